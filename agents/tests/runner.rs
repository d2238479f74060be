//! The command runner with real processes: output captured, failures carry stderr, a hung
//! command is killed at the timeout, a missing program says so.

use std::time::{Duration, Instant};

use cstor_agents::runner::{RunError, Runner};

#[tokio::test]
async fn success_failure_timeout_and_missing_program() {
    let r = Runner::default();
    let out = r
        .run("sh", &["-c", "echo pool; echo warn >&2"])
        .await
        .expect("runs");
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("pool\n", "warn\n")
    );

    match r
        .run(
            "sh",
            &["-c", "echo \"cannot open 'x': no such pool\" >&2; exit 1"],
        )
        .await
    {
        Err(RunError::Failed { stderr, status, .. }) => {
            assert_eq!(stderr, "cannot open 'x': no such pool");
            assert_eq!(status, "exit status: 1");
        }
        other => panic!("{other:?}"),
    }

    let quick = Runner {
        timeout: Duration::from_millis(200),
    };
    let started = Instant::now();
    match quick.run("sleep", &["5"]).await {
        Err(e @ RunError::Timeout { .. }) => {
            assert_eq!(
                e.to_string(),
                "`sleep 5` did not finish within 200 ms and was killed"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    match r.run("no-such-zpool-binary", &["status"]).await {
        Err(e @ RunError::Spawn { .. }) => {
            assert!(
                e.to_string()
                    .starts_with("`no-such-zpool-binary status` could not start")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chap_password_never_reaches_a_log_or_an_error() {
    let shown = cstor_agents::runner::shown_argv(
        "tgtadm",
        &[
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            "alice",
            "--password",
            "s3cret-pass-12",
        ],
    );
    assert_eq!(
        shown,
        "tgtadm --mode account --op new --user alice --password <redacted>"
    );
}

/// Streams: a command's output into a writer, a reader into a command's input; a command that
/// fails is a failed stream even when every byte moved (a `zfs send` that dies half-way must
/// not count as a backup); no progress for the idle time kills it.
#[tokio::test]
async fn streams_succeed_only_when_the_command_does() {
    let r = Runner::default();
    let mut sink: Vec<u8> = Vec::new();
    let n = r
        .stream_out(
            "sh",
            &["-c", "printf stream-bytes"],
            &mut sink,
            Duration::from_secs(5),
        )
        .await
        .expect("streamed");
    assert_eq!((n, sink.as_slice()), (12, b"stream-bytes".as_slice()));

    let mut sink: Vec<u8> = Vec::new();
    match r
        .stream_out(
            "sh",
            &[
                "-c",
                "printf partial; echo 'could not send x@s: does not exist' >&2; exit 1",
            ],
            &mut sink,
            Duration::from_secs(5),
        )
        .await
    {
        Err(RunError::Failed { stderr, .. }) => {
            assert_eq!(stderr, "could not send x@s: does not exist");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(sink, b"partial");

    let mut source: &[u8] = b"into-stdin";
    let n = r
        .stream_in(
            "sh",
            &["-c", "cat > /dev/null"],
            &mut source,
            Duration::from_secs(5),
        )
        .await
        .expect("streamed in");
    assert_eq!(n, 10);
    let mut source: &[u8] = b"x";
    assert!(matches!(
        r.stream_in(
            "sh",
            &["-c", "cat >/dev/null; exit 2"],
            &mut source,
            Duration::from_secs(5)
        )
        .await,
        Err(RunError::Failed { .. })
    ));

    let started = Instant::now();
    let mut sink: Vec<u8> = Vec::new();
    match r
        .stream_out("sleep", &["30"], &mut sink, Duration::from_millis(300))
        .await
    {
        Err(RunError::Stream { message, .. }) => assert_eq!(message, "no data for 300ms"),
        other => panic!("expected an idle failure, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}
