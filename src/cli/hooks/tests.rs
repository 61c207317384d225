//! Unit tests of `hooks install | uninstall | status` on settings trees and files.

use super::*;

const EXE: &str = "/opt/bin/claude-sessions";

fn entries() -> Vec<(&'static str, Tree)> {
    our_entries(EXE, Duration::from_secs(60))
}

/// A settings file as Claude Code writes it, with hooks and keys of the user's.
const USERS: &str = r#"{
  "model": "opus",
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "~/bin/audit.sh"
          }
        ]
      }
    ],
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "notify-send done"
          }
        ]
      }
    ]
  },
  "permissions": {
    "allow": [
      "Bash(npm test)"
    ]
  }
}"#;

fn edited(text: &str, edit: impl FnOnce(&mut Tree) -> anyhow::Result<bool>) -> (bool, String) {
    let mut t = Tree::parse(text).unwrap();
    let changed = edit(&mut t).unwrap();
    (changed, t.write_like(text))
}

#[test]
fn install_then_uninstall_is_byte_identical_and_install_is_idempotent() {
    let (changed, once) = edited(USERS, |t| install(t, &entries()));
    assert!(changed);
    let t = Tree::parse(&once).unwrap();
    let pre = t.get("hooks").and_then(|h| h.get("PreToolUse")).unwrap();
    let Tree::Array(groups) = pre else { panic!() };
    assert_eq!(groups.len(), 2, "the user's group, then ours");
    assert_eq!(groups[1].get("matcher").and_then(Tree::as_str), Some("*"));
    let ours = &groups[1].get("hooks").unwrap();
    let Tree::Array(h) = ours else { panic!() };
    assert_eq!(
        h[0].get("command").and_then(Tree::as_str),
        Some("/opt/bin/claude-sessions hook pre-tool-use --approval-timeout 60s")
    );
    assert_eq!(h[0].get("timeout"), Some(&Tree::number(90)), "above the approval timeout");
    let ups = t.get("hooks").and_then(|h| h.get("UserPromptSubmit")).unwrap();
    let Tree::Array(ups) = ups else { panic!() };
    assert!(ups[0].get("matcher").is_none(), "UserPromptSubmit takes no matcher");
    // Keys keep their order: model, hooks, permissions; events: PreToolUse, Stop, then ours.
    let Tree::Object(root) = &t else { panic!() };
    assert_eq!(root.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["model", "hooks", "permissions"]);
    let Some(Tree::Object(ev)) = t.get("hooks") else { panic!() };
    assert_eq!(
        ev.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["PreToolUse", "Stop", "UserPromptSubmit", "PostToolUse"]
    );
    let (again, twice) = edited(&once, |t| install(t, &entries()));
    assert!(!again, "installing twice is installing once");
    assert_eq!(twice, once);
    let (removed, back) = edited(&once, uninstall);
    assert!(removed);
    assert_eq!(back, USERS, "byte-identical after install then uninstall");
    let (nothing, same) = edited(USERS, uninstall);
    assert!(!nothing);
    assert_eq!(same, USERS);
}

#[test]
fn a_moved_binary_or_new_timeout_replaces_ours_in_place() {
    let (_, once) = edited(USERS, |t| install(t, &entries()));
    let newer = our_entries("/usr/local/bin/claude-sessions", Duration::from_secs(120));
    let (changed, moved) = edited(&once, |t| install(t, &newer));
    assert!(changed);
    assert!(!moved.contains("/opt/bin/claude-sessions"), "{moved}");
    assert!(moved.contains("--approval-timeout 120s") && moved.contains("\"timeout\": 150"), "{moved}");
    assert_eq!(moved.matches("hook pre-tool-use").count(), 1);
    assert_eq!(edited(&moved, uninstall).1, USERS);
}

#[test]
fn only_our_commands_are_ours() {
    let hook = |c: &str| Tree::object(vec![("type", Tree::string("command")), ("command", Tree::string(c))]);
    assert!(is_ours(&hook("/x/claude-sessions hook pre-tool-use"), "pre-tool-use"));
    assert!(is_ours(&hook("claude-sessions hook pre-tool-use --rules r.toml"), "pre-tool-use"));
    assert!(is_ours(&hook("'/my apps/claude-sessions' hook post-tool-use"), "post-tool-use"));
    assert!(!is_ours(&hook("/x/claude-sessions hook pre-tool-use"), "post-tool-use"));
    assert!(!is_ours(&hook("other-tool hook pre-tool-use"), "pre-tool-use"));
    assert!(!is_ours(&hook("/x/claude-sessions hook pre-tool-user"), "pre-tool-use"));
    assert_eq!(shell_word("/my apps/it's"), r"'/my apps/it'\''s'");
    assert_eq!(shell_word("/usr/bin/claude-sessions"), "/usr/bin/claude-sessions");
}

#[test]
fn a_group_shared_with_the_users_hooks_keeps_theirs() {
    let shared = r#"{
  "hooks": {
    "PostToolUse": [
      {
        "matcher": "*",
        "hooks": [
          {
            "type": "command",
            "command": "/opt/bin/claude-sessions hook post-tool-use"
          },
          {
            "type": "command",
            "command": "prettier --write"
          }
        ]
      }
    ]
  }
}"#;
    let (changed, out) = edited(shared, uninstall);
    assert!(changed);
    assert!(out.contains("prettier --write") && !out.contains("claude-sessions"), "{out}");
}

#[test]
fn files_missing_malformed_or_of_the_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/settings.json");
    assert_eq!(status(&path).unwrap(), "not installed (no settings file)");
    assert_eq!(change(&path, |t| install(t, &entries())).unwrap(), Some(None), "created, nothing to back up");
    assert_eq!(status(&path).unwrap(), "installed");
    let created = std::fs::read_to_string(&path).unwrap();
    assert!(created.starts_with("{\n  \"hooks\": {\n    \"PreToolUse\": ["), "{created}");
    let backup = change(&path, uninstall).unwrap().unwrap().unwrap();
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), created, "the backup is the file before the change");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n", "an install-created file is left as {{}}");
    assert_eq!(change(&path, uninstall).unwrap(), None, "nothing to remove: no write");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"hooks\": [").unwrap();
    let e = change(&bad, |t| install(t, &entries())).unwrap_err();
    assert!(format!("{e:#}").contains("not valid JSON"), "{e:#}");
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "{\"hooks\": [");
    for (text, what) in [
        ("[1]", "not a JSON object"),
        ("{\"hooks\": 3}", "\"hooks\" is not"),
        ("{\"hooks\": {\"PreToolUse\": {}}}", "\"PreToolUse\" is not an array"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let e = change(&bad, |t| install(t, &entries())).unwrap_err();
        assert!(format!("{e:#}").contains(what), "{text}: {e:#}");
        assert_eq!(std::fs::read_to_string(&bad).unwrap(), text, "not touched");
    }
    let backups = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("bad.json.bak"));
    assert_eq!(backups.count(), 0, "no backup when nothing was written");
}

#[test]
fn status_says_partly_when_some_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    std::fs::write(&path, USERS).unwrap();
    assert_eq!(status(&path).unwrap(), "not installed");
    change(&path, |t| install(t, &entries())).unwrap();
    let mut t = Tree::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let Some(Tree::Object(ev)) = t.get_mut("hooks") else { panic!() };
    ev.retain(|(k, _)| k != "PostToolUse");
    std::fs::write(&path, t.write_like(USERS)).unwrap();
    assert_eq!(status(&path).unwrap(), "partly installed (PreToolUse, UserPromptSubmit; missing PostToolUse)");
}

#[cfg(unix)]
#[test]
fn a_symlinked_settings_file_stays_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles-settings.json");
    std::fs::write(&real, USERS).unwrap();
    let link = dir.path().join("settings.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    change(&link, |t| install(t, &entries())).unwrap().expect("written");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&real).unwrap().contains("hook pre-tool-use"));
    change(&link, uninstall).unwrap().expect("written");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), USERS);
}
