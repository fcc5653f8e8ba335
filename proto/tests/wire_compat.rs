//! Our `.proto` files against the compiled public Hubble API (v1.19.4).
//!
//! The reference lives outside the repository, in `../shared/hubble-api/hubble-api.binpb`
//! (override with `SIGHTLINE_HUBBLE_API_DESCRIPTOR`). Without it the comparison cannot
//! run: the test says so, and fails when `CI` is set so CI never passes vacuously.

mod support;

use std::path::{Path, PathBuf};

use prost::Message;
use prost_types::FileDescriptorSet;
use support::descriptor_diff::diff;

const PACKAGES: [&str; 4] = ["flow", "observer", "peer", "relay"];

fn reference_path() -> PathBuf {
    std::env::var_os("SIGHTLINE_HUBBLE_API_DESCRIPTOR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/hubble-api/hubble-api.binpb"),
        PathBuf::from,
    )
}

fn reference() -> Option<FileDescriptorSet> {
    let path = reference_path();
    match std::fs::read(&path) {
        Ok(bytes) => Some(FileDescriptorSet::decode(bytes.as_slice()).expect("reference is a FileDescriptorSet")),
        Err(err) => {
            let msg = format!(
                "reference descriptor {} unavailable ({err}): wire compatibility NOT checked",
                path.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("{msg}");
            None
        }
    }
}

fn ours() -> FileDescriptorSet {
    protox::Compiler::new([env!("CARGO_MANIFEST_DIR")])
        .expect("proto include root")
        .include_imports(true)
        .open_files([
            "flow/flow.proto",
            "observer/observer.proto",
            "peer/peer.proto",
            "relay/relay.proto",
        ])
        .expect("our protos compile")
        .file_descriptor_set()
}

#[test]
fn protos_match_the_public_hubble_api_element_by_element() {
    let Some(reference) = reference() else { return };
    let differences = diff(&reference, &ours(), &PACKAGES);
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn the_reference_covers_all_four_packages_and_both_services() {
    let Some(reference) = reference() else { return };
    let names: Vec<&str> = reference.file.iter().map(|f| f.name()).collect();
    for file in [
        "flow/flow.proto",
        "observer/observer.proto",
        "peer/peer.proto",
        "relay/relay.proto",
    ] {
        assert!(names.contains(&file), "{file} missing from reference: {names:?}");
    }
    let services: Vec<String> = reference
        .file
        .iter()
        .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package(), s.name())))
        .collect();
    assert_eq!(services, ["observer.Observer", "peer.Peer"]);
}

/// The comparison must notice one changed element of each kind; this mutates our own
/// descriptor the way a careless edit would and checks the line it reports.
#[test]
fn a_single_changed_element_is_reported_readably() {
    let pristine = ours();
    let flow_file = |set: &mut FileDescriptorSet| -> usize {
        set.file
            .iter()
            .position(|f| f.name() == "flow/flow.proto")
            .expect("flow.proto")
    };
    let message = |set: &mut FileDescriptorSet, name: &str| -> (usize, usize) {
        let file = flow_file(set);
        let msg = set.file[file]
            .message_type
            .iter()
            .position(|m| m.name() == name)
            .expect("message");
        (file, msg)
    };

    let mut changed = pristine.clone();
    let (file, msg) = message(&mut changed, "Flow");
    let uuid = changed.file[file].message_type[msg]
        .field
        .iter_mut()
        .find(|f| f.name() == "uuid")
        .expect("uuid");
    uuid.number = Some(35);
    assert_eq!(
        diff(&pristine, &changed, &PACKAGES),
        ["flow.Flow.uuid: number 34 expected, 35 found"]
    );

    let mut changed = pristine.clone();
    let (file, msg) = message(&mut changed, "Flow");
    changed.file[file].message_type[msg].reserved_range.pop();
    assert_eq!(
        diff(&pristine, &changed, &PACKAGES),
        [
            "flow.Flow: reserved ranges [(7, 8), (12, 13), (17, 18), (18, 19)] expected, [(7, 8), (12, 13), (17, 18)] found"
        ]
    );

    let mut changed = pristine.clone();
    let (file, msg) = message(&mut changed, "Layer4");
    changed.file[file].message_type[msg].field[0].oneof_index = None;
    let lines = diff(&pristine, &changed, &PACKAGES);
    assert_eq!(
        lines,
        [r#"flow.Layer4.TCP: oneof Some("protocol") expected, None found"#]
    );

    let mut changed = pristine.clone();
    let file = flow_file(&mut changed);
    let verdict = changed.file[file]
        .enum_type
        .iter_mut()
        .find(|e| e.name() == "Verdict")
        .expect("Verdict");
    verdict.value.retain(|v| v.name() != "TRANSLATED");
    assert_eq!(
        diff(&pristine, &changed, &PACKAGES),
        ["flow.Verdict.TRANSLATED: enum value missing"]
    );

    let mut changed = pristine.clone();
    let observer = changed
        .file
        .iter_mut()
        .find(|f| f.name() == "observer/observer.proto")
        .expect("observer");
    observer.service[0]
        .method
        .iter_mut()
        .find(|m| m.name() == "GetFlows")
        .expect("GetFlows")
        .server_streaming = Some(false);
    assert_eq!(
        diff(&pristine, &changed, &PACKAGES),
        ["observer.Observer.GetFlows: server streaming true expected, false found"]
    );

    let mut changed = pristine.clone();
    let observer = changed
        .file
        .iter_mut()
        .find(|f| f.name() == "observer/observer.proto")
        .expect("observer");
    observer.public_dependency.clear();
    assert_eq!(
        diff(&pristine, &changed, &PACKAGES),
        [r#"observer/observer.proto: public imports ["flow/flow.proto"] expected, [] found"#]
    );
}

/// A field's number in a descriptor set, by full message name and field name;
/// names compare without case or underscores (`ipVersion` is `IP_VERSION`).
fn field_number(set: &FileDescriptorSet, message: &str, field: &str) -> Option<i32> {
    let canonical = |name: &str| name.replace('_', "").to_ascii_lowercase();
    set.file.iter().find_map(|file| {
        let name = message.strip_prefix(file.package())?.strip_prefix('.')?;
        let found = file.message_type.iter().find(|m| m.name() == name)?;
        found
            .field
            .iter()
            .find(|f| canonical(f.name()) == canonical(field))
            .map(|f| f.number())
    })
}

/// The numbers our hand-written encoders and the relay's pass-through use live in
/// `sightline_proto::fields`; each must be the public API's number for its field.
#[test]
fn hand_written_field_numbers_are_the_public_api_s() {
    let Some(reference) = reference() else { return };
    // The well-known types are not in the reference set; protox compiles them.
    let well_known = ours();
    let mut wrong = Vec::new();
    for &(message, field, number) in sightline_proto::fields::ALL {
        let set = if message.starts_with("google.protobuf.") {
            &well_known
        } else {
            &reference
        };
        match field_number(set, message, field) {
            Some(expected) if expected as u32 == number => {}
            found => wrong.push(format!(
                "{message}.{field}: {number} in fields.rs, {found:?} in the API"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(sightline_proto::fields::ALL.len() > 90, "every constant is listed");
}

#[test]
fn a_wrong_field_number_is_caught() {
    let set = ours();
    assert_eq!(field_number(&set, "flow.IP", "SOURCE_XLATED"), Some(5));
    assert_eq!(field_number(&set, "flow.IP", "IP_VERSION"), Some(3));
    assert_eq!(field_number(&set, "observer.GetFlowsResponse", "TIME"), Some(1001));
    assert_ne!(field_number(&set, "flow.Flow", "UUID"), Some(35));
    assert_eq!(field_number(&set, "flow.Flow", "NO_SUCH_FIELD"), None);
}
