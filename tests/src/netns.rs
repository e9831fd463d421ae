//! [`Hosts`]: separate network hosts on one machine, for partition tests.
//!
//! Each host is a network namespace of its own with one veth link to a
//! bridge in the test's namespace, which holds the bridge's address and so
//! reaches every host (the test's clients are never partitioned). A
//! partition is a pair of blackhole routes, one in each host's namespace,
//! so the two hosts drop each other's packets while both still answer the
//! test: established connections stall and new ones fail, as across a cut
//! link. Names carry the creating process id, so a later run removes what a
//! killed one left behind. Creating and removing namespaces needs root and
//! `ip` (Debian `iproute2`); [`Hosts::available`] says whether they work.
//!
//! `Drop` removes the namespaces (their veth ends go with them) and the
//! bridge; the processes running in them must be gone first (a
//! [`crate::Cluster`] built on the hosts holds them and kills its members
//! before it drops them).

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::HarnessError;

/// Prefix of every namespace and interface this module creates.
const PREFIX: &str = "rct";

/// Hosts made by this process so far (part of each new set's names).
static SETS: AtomicU32 = AtomicU32::new(0);

/// Serializes subnet choice among the sets of one process.
static CHOOSING: Mutex<()> = Mutex::new(());

/// N hosts that reach each other and the test, until cut apart.
#[derive(Debug)]
pub struct Hosts {
    bridge: String,
    namespaces: Vec<String>,
    subnet: [u8; 3],
    cuts: Mutex<Vec<(usize, usize)>>,
}

/// Runs `ip` with `args`; an error names the command and its stderr.
fn ip(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io(format!("run ip {}", args.join(" ")), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The stdout of `ip args`, empty when it fails.
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and bridges left by test processes that are gone.
fn remove_leftovers() {
    let owner = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(PREFIX)?;
        let pid: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        u32::from_str_radix(&pid, 16).ok()
    };
    for line in ip_output(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if owner(name).is_some_and(|pid| !alive(pid)) {
            let _ = ip(&["netns", "del", name]);
        }
    }
    for line in ip_output(&["-o", "link", "show", "type", "bridge"]).lines() {
        let name = line
            .split(':')
            .nth(1)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if owner(&name).is_some_and(|pid| !alive(pid)) {
            let _ = ip(&["link", "del", &name]);
        }
    }
}

impl Hosts {
    /// Whether namespaces can be made here: `ip` runs and this process may
    /// add and remove one (root).
    #[must_use]
    pub fn available() -> bool {
        let probe = format!("{PREFIX}{:x}probe", std::process::id());
        ip(&["netns", "add", &probe]).is_ok() && ip(&["netns", "del", &probe]).is_ok()
    }

    /// Creates `count` hosts (at most 200) on a fresh /24 of 10.0.0.0/8.
    pub fn create(count: usize) -> Result<Self, HarnessError> {
        if count == 0 || count > 200 {
            return Err(HarnessError::Setup(format!("{count} hosts")));
        }
        let _choosing = CHOOSING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        remove_leftovers();
        let set = SETS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{PREFIX}{:x}s{set}", std::process::id());
        let subnet = Self::free_subnet()?;
        let mut hosts = Self {
            bridge: format!("{tag}b"),
            namespaces: Vec::new(),
            subnet,
            cuts: Mutex::new(Vec::new()),
        };
        // From here on, Drop removes whatever was made.
        ip(&["link", "add", &hosts.bridge, "type", "bridge"])?;
        ip(&["link", "set", &hosts.bridge, "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", hosts.gateway()),
            "dev",
            &hosts.bridge,
        ])?;
        for i in 0..count {
            let ns = format!("{tag}n{i}");
            ip(&["netns", "add", &ns])?;
            hosts.namespaces.push(ns.clone());
            let veth = format!("{tag}v{i}");
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &hosts.bridge, "up"])?;
            let addr = format!("{}/24", hosts.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// A 10.a.b.0/24 that no interface here uses.
    fn free_subnet() -> Result<[u8; 3], HarnessError> {
        let used = ip_output(&["-4", "-o", "addr", "show"]);
        let seed = std::process::id().wrapping_mul(2_654_435_761) ^ SETS.load(Ordering::Relaxed);
        for step in 0..1000u32 {
            let n = seed.wrapping_add(step.wrapping_mul(7919));
            let [a, b] = [(n >> 8) as u8, n as u8];
            let prefix = format!(" 10.{a}.{b}.");
            if !used.contains(&prefix) {
                return Ok([10, a, b]);
            }
        }
        Err(HarnessError::Setup("no free 10.x.y.0/24".into()))
    }

    /// The test's address on the hosts' network (the bridge's).
    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Host `i`'s address.
    ///
    /// # Panics
    /// If there is no host `i`.
    #[must_use]
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        assert!(i < 200, "no host {i}");
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 2 + i as u8)
    }

    /// Host `i`'s namespace, for `ip netns exec`.
    ///
    /// # Panics
    /// If there is no host `i`.
    #[must_use]
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// How many hosts there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Cuts the link between hosts `a` and `b` both ways (a no-op if cut).
    pub fn cut(&self, a: usize, b: usize) -> Result<(), HarnessError> {
        let pair = (a.min(b), a.max(b));
        let mut cuts = self.lock_cuts();
        if a == b || cuts.contains(&pair) {
            return Ok(());
        }
        self.route("add", a, b)?;
        self.route("add", b, a)?;
        cuts.push(pair);
        Ok(())
    }

    /// Cuts host `i` off from every other host.
    pub fn isolate(&self, i: usize) -> Result<(), HarnessError> {
        for other in 0..self.len() {
            self.cut(i, other)?;
        }
        Ok(())
    }

    /// Restores every cut link.
    pub fn heal(&self) -> Result<(), HarnessError> {
        let mut cuts = self.lock_cuts();
        while let Some((a, b)) = cuts.pop() {
            self.route("del", a, b)?;
            self.route("del", b, a)?;
        }
        Ok(())
    }

    /// The links cut now, as (lower, higher) host pairs.
    #[must_use]
    pub fn cuts(&self) -> Vec<(usize, usize)> {
        self.lock_cuts().clone()
    }

    fn route(&self, action: &str, from: usize, to: usize) -> Result<(), HarnessError> {
        let target = format!("{}/32", self.addr(to));
        ip(&[
            "-n",
            self.namespace(from),
            "route",
            action,
            "blackhole",
            &target,
        ])
    }

    fn lock_cuts(&self) -> std::sync::MutexGuard<'_, Vec<(usize, usize)>> {
        self.cuts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    use super::{Hosts, ip_output};
    use crate::{Tool, require_or_skip};

    /// A port nobody listens on: a host that gets the connection answers
    /// with a reset ("refused"), so reaching it needs no listener.
    const PORT: u16 = 9;

    /// Whether a connection from host `from` to `to` gets an answer.
    fn reaches(hosts: &Hosts, from: usize, to: Ipv4Addr) -> bool {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", hosts.namespace(from), "timeout", "2"])
            .args(["bash", "-c", &format!("exec 3<>/dev/tcp/{to}/{PORT}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).contains("refused")
    }

    fn test_reaches(to: Ipv4Addr) -> bool {
        let err = TcpStream::connect_timeout(&(to, PORT).into(), Duration::from_secs(2))
            .expect_err("nobody listens");
        err.kind() == std::io::ErrorKind::ConnectionRefused
    }

    #[test]
    fn hosts_reach_each_other_until_cut_and_again_once_healed() {
        if !require_or_skip(Tool::Netns, "hosts_reach_each_other_until_cut") {
            return;
        }
        let hosts = Hosts::create(3).unwrap();
        assert!(reaches(&hosts, 0, hosts.addr(1)));
        assert!(reaches(&hosts, 2, hosts.addr(0)));
        hosts.cut(0, 1).unwrap();
        assert_eq!(hosts.cuts(), [(0, 1)]);
        assert!(!reaches(&hosts, 0, hosts.addr(1)));
        assert!(!reaches(&hosts, 1, hosts.addr(0)));
        // Only that link: host 2 reaches both, and the test every host.
        assert!(reaches(&hosts, 2, hosts.addr(0)));
        assert!(reaches(&hosts, 1, hosts.addr(2)));
        assert!((0..3).all(|i| test_reaches(hosts.addr(i))));
        hosts.isolate(2).unwrap();
        assert!(!reaches(&hosts, 0, hosts.addr(2)));
        assert!(test_reaches(hosts.addr(2)));
        hosts.heal().unwrap();
        assert!(hosts.cuts().is_empty());
        assert!(reaches(&hosts, 0, hosts.addr(1)));
        assert!(reaches(&hosts, 0, hosts.addr(2)));
        let names: Vec<String> = (0..3).map(|i| hosts.namespace(i).to_owned()).collect();
        drop(hosts);
        let left = ip_output(&["netns", "list"]);
        assert!(names.iter().all(|n| !left.contains(n.as_str())), "{left}");
    }
}
