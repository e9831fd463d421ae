//! Small local servers the suite points things at: a TCP [`Proxy`] that can
//! cut a client off from the registry (a partition without stopping the
//! server), and health-check targets for the probes: an HTTP server with a
//! settable status, a TCP listener that can be closed and reopened, and a
//! gRPC server with the standard health service (`tonic-health`).
//! Everything binds `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Aborts the task when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards TCP connections to a target while up; [`Proxy::cut`] closes
/// every open connection and refuses new ones until [`Proxy::heal`].
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    _accept: Task,
}

impl Proxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(watch::Sender::new(true));
        let accept_up = Arc::clone(&up);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*accept_up.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut down = accept_up.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            _accept: Task(accept),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn heal(&self) {
        self.up.send_replace(true);
    }
}

/// An HTTP server answering every request with the current status code.
pub struct HttpTarget {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    _task: Task,
}

impl HttpTarget {
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let addr = listener.local_addr().expect("http address");
        let status = Arc::new(AtomicU16::new(status));
        let current = Arc::clone(&status);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let code = current.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            addr,
            status,
            _task: Task(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }
}

/// A TCP listener that can be closed (connections refused) and reopened on
/// the same port.
pub struct TcpTarget {
    addr: SocketAddr,
    task: Option<Task>,
}

impl TcpTarget {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let addr = listener.local_addr().expect("tcp address");
        Self {
            addr,
            task: Some(Self::serve(listener)),
        }
    }

    fn serve(listener: TcpListener) -> Task {
        Task(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        }))
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn close(&mut self) {
        self.task = None;
    }

    pub async fn reopen(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind tcp");
        self.task = Some(Self::serve(listener));
    }
}

/// A gRPC server with only the standard health service.
pub struct GrpcTarget {
    addr: SocketAddr,
    reporter: HealthReporter,
    _task: Task,
}

impl GrpcTarget {
    /// The service name the probes ask about.
    pub const SERVICE: &'static str = "rollcall.test.Echo";

    pub async fn start() -> Self {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(Self::SERVICE, ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let addr = listener.local_addr().expect("grpc address");
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Self {
            addr,
            reporter,
            _task: Task(task),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter
            .set_service_status(Self::SERVICE, status)
            .await;
    }
}
