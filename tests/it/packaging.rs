//! What the package ships beside the code: a LICENSE that says what Cargo.toml's `license`
//! says, and a release profile without debug info (the installed binary and the Docker
//! image; scripts/test.sh measures the installed binary), with a separate profile that
//! keeps it for profilers.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo_toml() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).expect("read Cargo.toml");
    toml::from_str(&text).expect("Cargo.toml is TOML")
}

/// Text by which a license file of each SPDX id is recognised (from the license itself).
const KNOWN: &[(&str, &[&str])] = &[(
    "MIT",
    &[
        "MIT License",
        "Permission is hereby granted, free of charge, to any person obtaining a copy",
        "The above copyright notice and this permission notice shall be included in all",
        "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND",
    ],
)];

/// The SPDX ids a license kind would need a file for, from the text of LICENSE.
fn kinds_of(text: &str) -> Vec<&'static str> {
    KNOWN.iter().filter(|(_, marks)| marks.iter().all(|m| text.contains(m))).map(|(id, _)| *id).collect()
}

#[test]
fn license_file_matches_cargo_toml() {
    let manifest = cargo_toml();
    let license = manifest["package"]["license"].as_str().expect("Cargo.toml: package.license");
    let text = std::fs::read_to_string(repo().join("LICENSE"))
        .unwrap_or_else(|e| panic!("Cargo.toml says license = {license:?} but LICENSE cannot be read: {e}"));
    assert_eq!(kinds_of(&text), [license], "LICENSE is not the {license} license text Cargo.toml names");
    assert!(
        text.lines().any(|l| l.trim() == "Copyright (c) 2026 the claude-sessions authors"),
        "LICENSE: no copyright line"
    );
    // No license-file key pointing elsewhere: the license field is the whole story.
    assert!(manifest["package"].get("license-file").is_none(), "both license and license-file in Cargo.toml");

    // The recogniser is not fooled by another text, or by an altered one.
    assert!(kinds_of("Apache License\nVersion 2.0, January 2004").is_empty());
    assert!(kinds_of(&text.replace("free of charge", "for a fee")).is_empty());
}

fn is_off(v: Option<&toml::Value>) -> bool {
    matches!(v, Some(toml::Value::Boolean(false)) | Some(toml::Value::Integer(0)))
        || v.and_then(toml::Value::as_str) == Some("none")
}

#[test]
fn release_profile_has_no_debug_info_and_profiling_has() {
    let manifest = cargo_toml();
    let profiles = manifest["profile"].as_table().expect("[profile.*] in Cargo.toml");
    let release = profiles["release"].as_table().expect("[profile.release]");
    assert!(is_off(release.get("debug")), "[profile.release] debug must be false: {:?}", release.get("debug"));
    let strip = release.get("strip");
    assert!(
        matches!(strip, Some(toml::Value::Boolean(true))) || strip.and_then(toml::Value::as_str) == Some("symbols"),
        "[profile.release] strip must be true (symbols): {strip:?}"
    );

    let profiling = profiles["profiling"].as_table().expect("[profile.profiling] for profilers");
    assert_eq!(profiling["inherits"].as_str(), Some("release"), "[profile.profiling] inherits release");
    assert!(profiling.get("debug").is_some_and(|d| !is_off(Some(d))), "[profile.profiling] needs debug info");
    assert!(is_off(profiling.get("strip")), "[profile.profiling] must not strip: {:?}", profiling.get("strip"));
}
