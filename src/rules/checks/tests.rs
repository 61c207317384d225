use super::commands::mode_world_writable;
use super::paths::{is_broad, secret_kind};
use super::*;
use crate::rules::shell::Arg;

fn holds(check: Check, cmd: &str) -> bool {
    let input = serde_json::json!({ "command": cmd });
    check.holds(&Call::new("Bash", &input))
}

#[test]
fn broad_paths() {
    let lit = |t: &str| Arg { text: t.into(), ..Arg::default() };
    for p in ["/", "//", "/.", "/tmp/..", "~", "~/", "~/..", "/etc", "/usr/lib", "/home/bob", "/Users/bob", "/var"] {
        assert!(is_broad(&lit(p), None), "{p}");
    }
    for p in ["/tmp", "/tmp/x", "./build", "~/project/target", "/var/tmp/x", "/home/bob/project", "build"] {
        assert!(!is_broad(&lit(p), None), "{p}");
    }
    assert!(is_broad(&Arg { text: "/*".into(), glob: true, ..Arg::default() }, None));
    assert!(is_broad(&Arg { text: "~/*".into(), glob: true, ..Arg::default() }, None));
    assert!(is_broad(&Arg { text: "*".into(), glob: true, ..Arg::default() }, Some("/")));
    assert!(is_broad(&lit("."), Some("~")));
    assert!(!is_broad(&lit("build"), Some("~/project")));
}

#[test]
fn modes() {
    for m in ["777", "0777", "1777", "666", "o+w", "a+rwx", "go+w", "u+x,o+w", "o=rwx"] {
        assert!(mode_world_writable(m), "{m}");
    }
    for m in ["755", "644", "u+w", "g+w", "o-w", "+x", "600"] {
        assert!(!mode_world_writable(m), "{m}");
    }
}

#[test]
fn secrets() {
    for p in [
        "~/.ssh/id_rsa",
        "/home/u/.ssh/id_ed25519",
        "~/.aws/credentials",
        "~/.netrc",
        ".env",
        ".ENV",
        ".env.local",
        "prod.env",
        "server.key",
        "~/.ssh/*",
        "~/.kube/config",
    ] {
        assert!(secret_kind(p).is_some(), "{p}");
    }
    for p in [
        "~/.ssh/id_rsa.pub",
        "~/.ssh/known_hosts",
        ".env.example",
        "src/env.rs",
        "README.md",
        "~/.ssh",
        "environment.ts",
    ] {
        assert!(secret_kind(p).is_none(), "{p}");
    }
}

#[test]
fn each_check_on_a_plain_spelling() {
    assert!(holds(Check::DeleteRoot, "rm -rf /"));
    assert!(holds(Check::DeleteRoot, "rm -r /etc"));
    assert!(!holds(Check::DeleteRoot, "rm -rf ./build"));
    assert!(holds(Check::DeleteRecursive, "rm -rf ./build"));
    assert!(holds(Check::DeleteRoot, "find / -delete"));
    assert!(holds(Check::DiskWipe, "dd if=/dev/zero of=/dev/sda bs=1M"));
    assert!(!holds(Check::DiskWipe, "dd if=/dev/zero of=/dev/null"));
    assert!(holds(Check::ForkBomb, ":(){ :|:& };:"));
    assert!(holds(Check::ForcePush, "git push -f"));
    assert!(holds(Check::ForcePushLease, "git push --force-with-lease"));
    assert!(!holds(Check::ForcePush, "git push --force-with-lease"));
    assert!(holds(Check::HistoryRewrite, "git reset --hard HEAD~1"));
    assert!(holds(Check::DownloadToShell, "curl -s x | sh"));
    assert!(holds(Check::PrivilegeEscalation, "sudo ls"));
    assert!(holds(Check::SecretAccess, "cat ~/.ssh/id_rsa"));
    assert!(holds(Check::StartupWrite, "echo x >> ~/.bashrc"));
    assert!(holds(Check::StartupWrite, "git diff --output=~/.bashrc"));
    assert!(holds(Check::SqlDrop, "psql -c 'DROP TABLE users'"));
    assert!(holds(Check::WorldWritable, "chmod -R 777 ."));
    assert!(holds(Check::Unresolved, "$CMD x"));
    assert!(holds(Check::ReadOnly, "ls -la"));
    assert!(holds(Check::ReadOnly, "cat a | grep b | head -5"));
    assert!(!holds(Check::ReadOnly, "echo hi\nrm -rf /"));
    assert!(!holds(Check::ReadOnly, "cat ~/.ssh/id_rsa"));
    assert!(!holds(Check::ReadOnly, "echo x > out.txt"));
}
