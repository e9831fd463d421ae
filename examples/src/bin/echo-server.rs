//! `echo-server`: one instance of the example echo service. It serves
//! `rollcall.examples.echo.v1.Echo` and `grpc.health.v1.Health` on `--listen`,
//! registers itself in rollcall with a gRPC health probe against its own
//! health service, and deregisters on Ctrl-C (or SIGTERM).
//!
//! Health can be failed on purpose to watch discovery drop the instance:
//! `--fail-after SECS` flips it to NOT_SERVING after that long, and SIGUSR1
//! toggles it (`kill -USR1 <pid>`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rollcall_client::Client;
use rollcall_client::registry::{HealthProbe, Instance, RegistrationOptions};
use rollcall_examples::ECHO_SERVICE;
use rollcall_examples::echo::echo_server::EchoServer;
use rollcall_examples::service::EchoService;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

#[derive(Parser, Debug)]
#[command(
    name = "echo-server",
    about = "An echo gRPC service that registers itself in rollcall"
)]
struct Args {
    /// rollcall endpoints (comma-separated).
    #[arg(
        long,
        env = "ROLLCALL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    /// The service name to register under.
    #[arg(long, default_value = "echo")]
    service: String,
    /// This instance's id (unique within the service).
    #[arg(long)]
    id: String,
    /// Address to serve on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, default_value = "")]
    zone: String,
    #[arg(long, default_value_t = 1)]
    weight: u32,
    /// Registration lease TTL in seconds: how long a crashed instance stays
    /// registered.
    #[arg(long, default_value_t = 10)]
    ttl: i64,
    /// Health probe interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    probe_interval_ms: u64,
    /// Report NOT_SERVING after this many seconds.
    #[arg(long)]
    fail_after: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("echo-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?.to_string();
    let id = args.id.clone();

    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(ECHO_SERVICE, ServingStatus::Serving)
        .await;
    let echo = EchoService {
        instance_id: id.clone(),
        addr: addr.clone(),
        zone: args.zone.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(EchoServer::new(echo))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );
    println!(
        "{id}: serving on {addr} (zone {:?}, weight {})",
        args.zone, args.weight
    );

    let client = Client::connect(args.endpoints.clone()).await?;
    let mut instance = Instance::new(&args.service, &id, &addr);
    instance.zone = args.zone.clone();
    instance.weight = args.weight;
    let probe = HealthProbe::grpc(&addr, ECHO_SERVICE)?
        .interval(Duration::from_millis(args.probe_interval_ms));
    let registration = client
        .register(
            instance,
            RegistrationOptions::new().ttl(args.ttl).probe(probe),
        )
        .await?;
    println!(
        "{id}: registered as /services/{}/{id} (ttl {}s)",
        args.service, args.ttl
    );

    let health = Health {
        reporter,
        id: id.clone(),
        serving: Arc::new(Mutex::new(true)),
    };
    if let Some(secs) = args.fail_after {
        let health = health.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            health.set(false).await;
        });
    }
    wait_for_shutdown(&health).await?;

    println!("{id}: shutting down");
    registration.deregister().await?;
    println!("{id}: deregistered");
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}

/// The instance's gRPC health status, flipped by `--fail-after` and SIGUSR1.
#[derive(Clone)]
struct Health {
    reporter: HealthReporter,
    id: String,
    serving: Arc<Mutex<bool>>,
}

impl Health {
    async fn set(&self, serving: bool) {
        let mut current = self.serving.lock().await;
        *current = serving;
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status(ECHO_SERVICE, status).await;
        println!(
            "{}: health {}",
            self.id,
            if serving { "SERVING" } else { "NOT_SERVING" }
        );
    }

    async fn toggle(&self) {
        let serving = *self.serving.lock().await;
        self.set(!serving).await;
    }
}

/// Waits for Ctrl-C or SIGTERM; SIGUSR1 toggles the health status meanwhile.
#[cfg(unix)]
async fn wait_for_shutdown(health: &Health) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => return result,
            _ = term.recv() => return Ok(()),
            _ = usr1.recv() => health.toggle().await,
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_shutdown(_health: &Health) -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
