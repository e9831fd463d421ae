//! Parsing of the client command lines and the output helpers.

use std::time::Duration;

use clap::Parser;

use super::output::{Table, base64, bytes_si, text};
use super::*;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

/// As the binary flattens it, next to a subcommand of its own.
#[derive(clap::Subcommand)]
enum Top {
    Serve,
    #[command(flatten)]
    Client(ClientCommand),
}

fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
    match Cli::try_parse_from(std::iter::once("rollcall").chain(args.iter().copied()))?.command {
        Top::Client(c) => Ok(c),
        Top::Serve => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
    }
}

#[test]
fn get_with_every_option() -> Result<(), clap::Error> {
    let cmd = parse(&[
        "get",
        "/a",
        "--prefix",
        "--limit",
        "5",
        "--rev",
        "7",
        "--keys-only",
        "--sort",
        "modify",
        "--order",
        "desc",
        "--endpoints",
        "a:1,b:2",
        "-o",
        "json",
        "--timeout",
        "750ms",
    ])?;
    let ClientCommand::Get(get) = &cmd else {
        panic!("{cmd:?}")
    };
    let o = get.options();
    assert_eq!(o.range, crate::RangeEnd::Prefix);
    assert_eq!((o.limit, o.revision, o.keys_only), (5, 7, true));
    assert_eq!(o.sort_target, crate::SortTarget::Mod);
    assert_eq!(o.sort_order, crate::SortOrder::Descend);
    assert_eq!(cmd.global().endpoints, ["a:1", "b:2"]);
    assert_eq!(cmd.global().output, Output::Json);
    assert_eq!(cmd.global().timeout, Duration::from_millis(750));
    assert_eq!(
        cmd.global().connect_options().connect_timeout,
        Duration::from_millis(750)
    );
    assert_eq!(cmd.name(), "get");
    assert!(parse(&["get", "/a", "--prefix", "--from-key"]).is_err());
    assert!(parse(&["get", "/a", "/b", "--prefix"]).is_err());
    assert!(parse(&["get", "/a", "--order", "desc"]).is_err());
    Ok(())
}

#[test]
fn defaults() -> Result<(), clap::Error> {
    // The environment variable is read by clap; this test only runs when it
    // is not set in the environment of the test process.
    if std::env::var_os(ENDPOINTS_ENV).is_some() {
        return Ok(());
    }
    let cmd = parse(&["services"])?;
    assert_eq!(cmd.global().endpoints, ["127.0.0.1:2379"]);
    assert_eq!(cmd.global().output, Output::Table);
    assert_eq!(cmd.global().timeout, Duration::from_secs(5));
    assert_eq!(
        cmd.global().connect_options().connect_timeout,
        Duration::from_secs(2)
    );
    Ok(())
}

#[test]
fn put_and_del() -> Result<(), clap::Error> {
    let cmd = parse(&[
        "put",
        "/k",
        "-1",
        "--lease",
        "694d7d8a2e8e6f0a",
        "--prev-kv",
    ])?;
    let ClientCommand::Put(put) = &cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(put.value, "-1");
    assert_eq!(put.lease, Some(0x694d_7d8a_2e8e_6f0a));
    assert!(put.prev_kv);
    assert!(parse(&["put", "/k", "v", "--lease", "xyz"]).is_err());
    let cmd = parse(&["del", "/k", "--prefix", "--prev-kv"])?;
    let ClientCommand::Del(del) = &cmd else {
        panic!("{cmd:?}")
    };
    let o = del.options();
    assert_eq!(o.range, crate::RangeEnd::Prefix);
    assert!(o.prev_kv);
    Ok(())
}

#[test]
fn lease_subcommands_take_hex_ids_and_global_options_anywhere() -> Result<(), clap::Error> {
    let cmd = parse(&["lease", "--output", "json", "ttl", "0x1F", "--keys"])?;
    match &cmd {
        ClientCommand::Lease(LeaseArgs {
            command: LeaseCommand::Ttl { id: 31, keys: true },
            global,
        }) => assert_eq!(global.output, Output::Json),
        other => panic!("{other:?}"),
    }
    assert_eq!(cmd.name(), "lease ttl");
    let cmd = parse(&["lease", "grant", "10", "--endpoints", "x:1"])?;
    assert_eq!(cmd.global().endpoints, ["x:1"]);
    assert!(matches!(
        parse(&["lease", "keepalive", "ff", "--once"])?,
        ClientCommand::Lease(LeaseArgs {
            command: LeaseCommand::KeepAlive {
                id: 255,
                once: true
            },
            ..
        })
    ));
    assert!(matches!(
        parse(&["lease", "list"])?,
        ClientCommand::Lease(LeaseArgs {
            command: LeaseCommand::List,
            ..
        })
    ));
    assert!(parse(&["lease", "revoke", "0"]).is_err());
    assert!(parse(&["lease", "revoke", "-5"]).is_err());
    assert_eq!(
        lease::parse_lease_id("694d7d8a2e8e6f0a"),
        Ok(0x694d_7d8a_2e8e_6f0a)
    );
    Ok(())
}

#[test]
fn register_builds_the_instance() -> Result<(), clap::Error> {
    let cmd = parse(&[
        "register",
        "web",
        "10.0.0.7:8080",
        "--zone",
        "eu-1",
        "--weight",
        "3",
        "--tag",
        "v2",
        "--tag",
        "canary",
        "--meta",
        "version=2.3",
        "--meta",
        "k=a=b",
        "--ttl",
        "4",
        "--check",
        "tcp://10.0.0.7:8080",
    ])?;
    let ClientCommand::Register(reg) = &cmd else {
        panic!("{cmd:?}")
    };
    let i = reg.instance();
    assert_eq!(
        (i.service.as_str(), i.id.as_str()),
        ("web", "10.0.0.7:8080")
    );
    assert_eq!((i.zone.as_str(), i.weight), ("eu-1", 3));
    assert_eq!(i.tags, ["v2", "canary"]);
    assert_eq!(i.meta.get("version").map(String::as_str), Some("2.3"));
    assert_eq!(i.meta.get("k").map(String::as_str), Some("a=b"));
    let options = reg.options().map_err(|e| panic!("{e}")).unwrap_or_default();
    assert_eq!(options.ttl, 4);
    assert!(options.probe.is_some());
    assert!(parse(&["register", "web", "h:1", "--meta", "novalue"]).is_err());
    let cmd = parse(&["register", "web", "http://h:1/x", "--check", "ftp://h"])?;
    let ClientCommand::Register(reg) = &cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(reg.instance().id, "http:__h:1_x");
    assert!(matches!(reg.options(), Err(CliError::Usage(_))));
    Ok(())
}

#[test]
fn the_other_commands_parse() -> Result<(), clap::Error> {
    assert!(matches!(
        parse(&["watch", "/s/", "--prefix", "--rev", "3", "--prev-kv"])?,
        ClientCommand::Watch(WatchArgs {
            rev: 3,
            prefix: true,
            prev_kv: true,
            ..
        })
    ));
    assert!(matches!(
        parse(&["discover", "web", "--watch"])?,
        ClientCommand::Discover(DiscoverArgs { watch: true, .. })
    ));
    assert!(matches!(parse(&["status"])?, ClientCommand::Status(_)));
    assert!(parse(&["get"]).is_err());
    Ok(())
}

#[test]
fn the_command_is_small_enough_to_sit_next_to_others() {
    // The binary's subcommand enum holds it by value.
    assert!(
        std::mem::size_of::<ClientCommand>() <= 160,
        "{}",
        std::mem::size_of::<ClientCommand>()
    );
}

#[test]
fn tables_align_and_escape() {
    let mut table = Table::new(["KEY", "VALUE", "LEASE"]);
    table.row(vec!["/a".into(), "1".into(), "-".into()]);
    table.row(vec!["/longer".into(), text(b"x\ny"), "ff".into()]);
    assert_eq!(
        table.render(),
        "KEY      VALUE  LEASE\n/a       1      -\n/longer  x\\ny   ff\n"
    );
    assert_eq!(Table::new(["ONLY"]).render(), "ONLY\n");
}

#[test]
fn base64_and_sizes() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    assert_eq!(bytes_si(999), "999 B");
    assert_eq!(bytes_si(20_480), "20 kB");
    assert_eq!(bytes_si(1_500_000), "1.5 MB");
}

#[test]
fn errors_map_to_exit_codes() {
    use crate::error::{ClientError, ServerError};
    let endpoints = vec!["127.0.0.1:1".to_owned()];
    let refused = CliError::client(
        ClientError::Server(ServerError::new(
            tonic::Code::NotFound,
            "etcdserver: requested lease not found",
        )),
        &endpoints,
    );
    assert_eq!(refused.to_string(), "etcdserver: requested lease not found");
    assert_eq!(refused.exit_code(), 1);
    let down = CliError::client(
        ClientError::Server(ServerError::new(tonic::Code::Unavailable, "stopping")),
        &endpoints,
    );
    assert_eq!(down.exit_code(), 3);
    assert!(down.to_string().contains("127.0.0.1:1"), "{down}");
    let timeout = CliError::client(ClientError::Timeout(Duration::from_secs(1)), &endpoints);
    assert_eq!(timeout.exit_code(), 3);
    let usage = CliError::client(ClientError::NoEndpoints, &endpoints);
    assert_eq!(usage.exit_code(), 2);
}
