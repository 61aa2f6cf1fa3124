//! Test hosts made of Linux network namespaces (the suite runs as root):
//! two networks, each a bridge in the test's own namespace, and hosts (one
//! namespace each) joined to either or both by veth pairs. The test process
//! itself sits on both networks, as the load host. A host's link to a
//! network can be cut (link down) and healed, which partitions it from that
//! network only. Everything is removed on drop.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

/// Which of the two networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// Where clients reach the nodes.
    Front,
    /// Where the nodes reach Redis.
    Back,
}

impl Net {
    fn index(self) -> u8 {
        match self {
            Net::Front => 0,
            Net::Back => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Net::Front => "front",
            Net::Back => "back",
        }
    }
}

/// The two networks, and the hosts made on them.
#[derive(Debug)]
pub struct TestNetwork {
    tag: String,
    subnet: u8,
    hosts: Vec<String>,
    next_host: u8,
}

/// Runs `ip ARGS`, panicking with its error output if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip ({e}); scripts/test installs iproute2"));
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestNetwork {
    /// Two fresh bridges in this namespace, 10.(200+net).N.0/24 each, with
    /// this namespace at .1 on both.
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        // Several networks may live in one test process at once.
        static MADE: AtomicU32 = AtomicU32::new(0);
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let network = Self {
            tag: format!("{}{made}", pid % 10_000),
            subnet: ((pid * 7 + made) % 250) as u8 + 1,
            hosts: Vec::new(),
            next_host: 10,
        };
        for net in [Net::Front, Net::Back] {
            let bridge = network.bridge(net);
            let _ = Command::new("ip").args(["link", "del", &bridge]).output();
            ip(&["link", "add", &bridge, "type", "bridge"]);
            let address = format!("{}/24", network.address(net, 1));
            ip(&["addr", "add", &address, "dev", &bridge]);
            ip(&["link", "set", &bridge, "up"]);
        }
        network
    }

    /// This namespace's own address on `net` (the load host's).
    pub fn gateway(&self, net: Net) -> Ipv4Addr {
        self.address(net, 1)
    }

    fn bridge(&self, net: Net) -> String {
        format!("sb{}{}", net.index(), self.tag)
    }

    fn address(&self, net: Net, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 200 + net.index(), self.subnet, host)
    }

    /// A new host joined to `nets`; its address is the same last byte on each.
    pub fn host(&mut self, name: &str, nets: &[Net]) -> TestHost {
        let number = self.next_host;
        self.next_host += 1;
        let namespace = format!("spike-{name}-{}", self.tag);
        let _ = Command::new("ip")
            .args(["netns", "del", &namespace])
            .output();
        ip(&["netns", "add", &namespace]);
        self.hosts.push(namespace.clone());
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        for &net in nets {
            let outside = format!("v{}{}{}", net.index(), number, self.tag);
            let inside = format!("i{}{}{}", net.index(), number, self.tag);
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &outside, "master", &self.bridge(net), "up"]);
            ip(&["link", "set", &inside, "netns", &namespace]);
            ip(&["-n", &namespace, "link", "set", &inside, "name", net.name()]);
            let address = format!("{}/24", self.address(net, number));
            ip(&["-n", &namespace, "addr", "add", &address, "dev", net.name()]);
            ip(&["-n", &namespace, "link", "set", net.name(), "up"]);
        }
        TestHost {
            namespace,
            front: nets
                .contains(&Net::Front)
                .then(|| self.address(Net::Front, number)),
            back: nets
                .contains(&Net::Back)
                .then(|| self.address(Net::Back, number)),
        }
    }
}

impl Default for TestNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        for namespace in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .output();
        }
        for net in [Net::Front, Net::Back] {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge(net)])
                .output();
        }
    }
}

/// One host: a network namespace with an address on each of its networks.
#[derive(Debug, Clone)]
pub struct TestHost {
    namespace: String,
    /// Its address on the front network, if joined.
    pub front: Option<Ipv4Addr>,
    /// Its address on the back network, if joined.
    pub back: Option<Ipv4Addr>,
}

impl TestHost {
    /// Starts `program ARGS` inside this host (output discarded).
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.namespace, program])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in {}: {e}", self.namespace))
    }

    /// Cuts this host off `net` (its link goes down).
    pub fn cut(&self, net: Net) {
        ip(&["-n", &self.namespace, "link", "set", net.name(), "down"]);
    }

    /// Joins this host to `net` again.
    pub fn heal(&self, net: Net) {
        ip(&["-n", &self.namespace, "link", "set", net.name(), "up"]);
    }
}
