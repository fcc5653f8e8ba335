//! `SIGHTLINE_*` environment variables set flags, with the precedence command line >
//! environment > config file > default. A test binary of its own with one test:
//! the environment is process-wide, and no other test may see these variables.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::time::Duration;

use sightline_agent::cli::Args;

fn argv(list: &[&str]) -> Vec<OsString> {
    std::iter::once("sightline-agent")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

#[test]
fn environment_sits_between_the_command_line_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(
        &file,
        "cluster-name: from-file\nevent-buffer-capacity: 1023\nlost-event-send-interval: 3s\npeers: [a=10.0.0.1:4244]\n",
    )
    .unwrap();

    let defaults = Args::load_from(argv(&[])).unwrap();
    assert_eq!(defaults.cluster_name, "default");
    assert!(!defaults.disable_server_tls);

    // SAFETY: this binary's only test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("SIGHTLINE_CONFIG", &file);
        std::env::set_var("SIGHTLINE_CLUSTER_NAME", "from-env");
        std::env::set_var("SIGHTLINE_EVENT_BUFFER_CAPACITY", "2047");
        std::env::set_var("SIGHTLINE_DISABLE_SERVER_TLS", "true");
        std::env::set_var("SIGHTLINE_PEERS", "b=10.0.0.2:4244,c=10.0.0.3:4244");
    }
    // The config file itself can come from the environment.
    let args = Args::load_from(argv(&[])).unwrap();
    assert_eq!(args.cluster_name, "from-env", "environment over file");
    assert_eq!(args.event_buffer_capacity, 2047, "environment over file");
    assert_eq!(
        args.peers,
        vec!["b=10.0.0.2:4244", "c=10.0.0.3:4244"],
        "a list replaced whole"
    );
    assert!(args.disable_server_tls, "a switch from the environment");
    assert_eq!(
        args.lost_event_send_interval,
        Duration::from_secs(3),
        "file over default"
    );
    assert_eq!(args.tls_reload_interval, Duration::from_secs(2), "default");

    let args = Args::load_from(argv(&[
        "--cluster-name",
        "from-cli",
        "--peers",
        "d=10.0.0.4:4244",
        "--event-buffer-capacity",
        "511",
    ]))
    .unwrap();
    assert_eq!(args.cluster_name, "from-cli", "command line over environment");
    assert_eq!(args.peers, vec!["d=10.0.0.4:4244"]);
    assert_eq!(args.event_buffer_capacity, 511);
    assert_eq!(args.lost_event_send_interval, Duration::from_secs(3));

    // An invalid value from the environment is an error, not a silent default.
    // SAFETY: as above, this test is the only thread of its process that touches the environment.
    unsafe {
        std::env::set_var("SIGHTLINE_EVENT_BUFFER_CAPACITY", "many");
    }
    assert!(Args::load_from(argv(&[])).is_err());
}
