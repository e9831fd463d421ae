//! Dropping the harness's processes kills them and removes their temp dirs,
//! for a whole cluster (a paused member included) and for a process owned by
//! a task that panics.

use std::path::{Path, PathBuf};

use rollcall_tests::backend::run_bounded;
use rollcall_tests::{Backend, Cluster, ServerProcess, Tool, require_or_skip};

fn traces(server: &ServerProcess) -> (u32, PathBuf) {
    (
        server.pid().expect("running"),
        server.scratch_dir().to_path_buf(),
    )
}

#[track_caller]
fn assert_gone((pid, dir): &(u32, PathBuf)) {
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists"
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_and_temp_dirs_go_on_drop_and_on_panic() {
    let test = "cleanup::processes_and_temp_dirs_go_on_drop_and_on_panic";
    if !require_or_skip(Tool::Etcd, test) {
        return;
    }
    run_bounded(test, async {
        let mut cluster = Cluster::builder(Backend::Etcd, 2).start().await.unwrap();
        cluster.member_mut(1).pause().unwrap();
        let left: Vec<(u32, PathBuf)> = cluster.members().iter().map(traces).collect();
        drop(cluster);
        left.iter().for_each(assert_gone);

        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let server = Backend::Etcd.start().await.unwrap();
            tx.send(traces(&server)).unwrap();
            panic!("a test failing while it owns a server");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_gone(&rx.await.unwrap());
    })
    .await;
}
