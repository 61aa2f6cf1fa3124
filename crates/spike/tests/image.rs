//! The container image (`deploy/container/Containerfile`), built by podman
//! from the binary the suite has already compiled, on a runtime base made
//! from this machine's own C libraries (no registry is reachable here),
//! then proved: its configuration (non-root user, entry point, health
//! check) is what the file says, and a node run from its root filesystem,
//! as the image's user, sells a sale on the suite's Redis and passes the
//! image's own health check.
//!
//! Running the container itself needs `podman run`, which this machine's
//! sandbox refuses ("crun: setrlimit RLIMIT_NOFILE: Operation not
//! permitted"); the node runs chrooted in the image's mounted root
//! filesystem instead, with the image's user, entry point and nothing else
//! from the host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use spike_core::{CentralStock, EventId, SaleConfig};
use spike_testkit::{free_port, unique, TestRedis};

const SPIKE: &str = env!("CARGO_BIN_EXE_spike");

/// The user the image runs as (distroless's `nonroot`).
const IMAGE_USER: &str = "65532:65532";

/// Runs `program` with `args`: its standard output, or the test fails with
/// all it said.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("BUILDAH_ISOLATION", "chroot")
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/test installs it): {e}"));
    let said = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{said}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    said
}

/// An image tag removed (with its mount) when the test ends, pass or fail.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        for args in [["image", "unmount"], ["rmi", "--force"]] {
            let _ = Command::new("podman")
                .args(args)
                .arg(&self.0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The unnamed images podman holds.
fn dangling() -> std::collections::HashSet<String> {
    let listed = run(
        "podman",
        &["images", "--quiet", "--filter", "dangling=true"],
    );
    listed.lines().map(str::to_owned).collect()
}

/// A runtime base like distroless's `cc`: the dynamic loader and the C
/// libraries `binary` links (as `ldd` lists them, at their paths), the
/// `nonroot` user, an empty /tmp; no shell, nothing else.
fn runtime_base(binary: &Path, dir: &Path, tag: &str) -> Image {
    let root = dir.join("base");
    let linked = run("ldd", &[binary.to_str().unwrap()]);
    let libraries: Vec<&str> = (linked.lines())
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .collect();
    assert!(libraries.iter().any(|l| l.contains("libc.so")), "{linked}");
    for library in libraries {
        let inside = root.join(library.trim_start_matches('/'));
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(library, &inside).unwrap();
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    let tar = dir.join("base.tar");
    run(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    run("podman", &["import", tar.to_str().unwrap(), tag]);
    Image(tag.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_builds_and_a_node_from_it_sells_on_the_suites_redis() {
    let dir = std::env::temp_dir().join(unique("image"));
    std::fs::create_dir_all(dir.join("context")).unwrap();
    let binary = PathBuf::from(SPIKE);
    let suffix = unique("t").to_lowercase();
    let base = runtime_base(
        &binary,
        &dir,
        &format!("localhost/spike-runtime-base:{suffix}"),
    );

    // The image: the Containerfile's runtime stage over the suite's binary.
    // (The build leaves its stage's image unnamed: removed at the end too.)
    let dangling_before = dangling();
    std::fs::copy(&binary, dir.join("context/spike")).unwrap();
    let containerfile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/container/Containerfile");
    let image = Image(format!("localhost/spike:{suffix}"));
    run(
        "podman",
        &[
            "build",
            "--quiet",
            "--format",
            "docker",
            "-f",
            containerfile.to_str().unwrap(),
            "--build-arg",
            "BINARY=prebuilt",
            "--build-arg",
            &format!("RUNTIME={}", base.0),
            "-t",
            &image.0,
            dir.join("context").to_str().unwrap(),
        ],
    );
    let config = run(
        "podman",
        &[
            "image",
            "inspect",
            &image.0,
            "--format",
            "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Healthcheck.Test}}",
        ],
    );
    let fields: Vec<&str> = config.trim().split('|').collect();
    assert_eq!(fields[0], IMAGE_USER, "{config}");
    assert_eq!(fields[1], r#"["/usr/local/bin/spike"]"#, "{config}");
    assert!(
        fields[2].contains(r#""/usr/local/bin/spike","probe""#),
        "{config}"
    );

    // A node from the image's root filesystem, as the image's user.
    let redis = TestRedis::shared_or_spawn();
    let central = redis_central(redis.url()).await;
    let event = EventId::parse(unique("img")).unwrap();
    create_sale(&central, &event, SaleConfig::new(3).unwrap()).await;
    let rootfs = run("podman", &["image", "mount", &image.0])
        .trim()
        .to_owned();
    assert!(Path::new(&rootfs).join("usr/local/bin/spike").exists());
    assert!(
        !Path::new(&rootfs).join("bin/sh").exists(),
        "no shell in the image"
    );
    let (port, admin) = (free_port(), free_port());
    let chrooted = |args: &[&str]| {
        let mut command = Command::new("/usr/sbin/chroot");
        command
            .arg(format!("--userspec={IMAGE_USER}"))
            .arg(&rootfs)
            .arg("/usr/local/bin/spike")
            .args(args)
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let node = chrooted(&[
        "node",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--redis",
        redis.url(),
        "--event",
        event.as_str(),
        "--no-stat-log",
    ])
    .spawn()
    .expect("chroot");
    let node = Running(node);
    wait_for(port).await;

    let http = Http::new();
    let url =
        |user: &str| format!("http://127.0.0.1:{port}/buy/ticket?event={event}&user_id={user}");
    for user in ["ann", "bob", "cy"] {
        assert_eq!(http.get(&url(user)).await.code(), Code::Success);
    }
    assert_eq!(http.get(&url("dee")).await.code(), Code::SoldOut);
    let sold = central.snapshot(&event).await.unwrap().unwrap().sold;
    assert_eq!(sold, 3, "the image's node sold the suite's sale");
    let healthy = chrooted(&["probe", &format!("http://127.0.0.1:{port}/healthz")])
        .status()
        .unwrap();
    assert!(healthy.success(), "the image's health check passes");
    drop(node);
    let unhealthy = chrooted(&["probe", &format!("http://127.0.0.1:{port}/healthz")])
        .status()
        .unwrap();
    assert!(!unhealthy.success(), "and fails once the node is gone");
    drop((image, base));
    for id in dangling().difference(&dangling_before) {
        drop(Image(id.clone()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
