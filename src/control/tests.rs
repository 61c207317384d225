//! Unit tests of the control store: bounds, expiry, decisions once, notes once, persistence.

use super::*;

fn control(dir: Option<PathBuf>) -> (Control, Arc<Bus>) {
    let bus = Bus::new(64, 64);
    (Control::new(Arc::clone(&bus), dir, Arc::new(|_| Some("app".into()))), bus)
}

fn new(session: &str) -> NewApproval {
    NewApproval {
        session_id: session.into(),
        tool_name: "Bash".into(),
        summary: "rm -rf /".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_decision_is_made_once_and_wakes_the_waiter() {
    let (c, bus) = control(None);
    let c = Arc::new(c);
    let a = c.register(new("s")).unwrap();
    assert_eq!(a.state, ApprovalState::Pending);
    let waiting = c.wait(&a.id, Duration::from_millis(10)).await.unwrap();
    assert_eq!(waiting.state, ApprovalState::Pending, "no decision: still pending when the wait ends");
    let c2 = Arc::clone(&c);
    let id = a.id.clone();
    let waiter = tokio::spawn(async move { c2.wait(&id, Duration::from_secs(10)).await });
    tokio::task::yield_now().await;
    let d = c.decide(&a.id, Decision::Deny, "no", "cli").unwrap();
    assert_eq!(d.state, ApprovalState::Denied);
    let woke = waiter.await.unwrap().unwrap();
    assert_eq!((woke.state, woke.decided_reason.as_deref()), (ApprovalState::Denied, Some("no")));
    assert!(matches!(c.decide(&a.id, Decision::Allow, "", "cli"), Err(DecideError::Decided(_))));
    assert!(matches!(c.expire(&a.id, "hook"), Err(DecideError::Decided(_))));
    assert_eq!(c.decide("nope", Decision::Allow, "", "cli"), Err(DecideError::Unknown));
    let (events, _) = bus.since(0);
    let names: Vec<_> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["approval_pending", "approval_decided"]);
    assert_eq!(events[0].project, "app");
}

#[test]
fn approvals_are_bounded_and_pending_ones_are_listed_first() {
    let (c, _) = control(None);
    let first = c.register(new("s")).unwrap();
    c.decide(&first.id, Decision::Allow, "ok", "api").unwrap();
    for _ in 1..MAX_APPROVALS {
        c.register(new("s")).unwrap();
    }
    assert_eq!(c.list()[0].state, ApprovalState::Pending);
    assert_eq!(c.list().last().unwrap().id, first.id);
    // The decided one makes room; then every one is pending and the next is refused.
    c.register(new("s")).unwrap();
    assert!(c.get(&first.id).is_none());
    assert_eq!(c.register(new("s")), Err(Full("too many pending approvals")));
}

#[test]
fn stale_approvals_expire_and_old_decisions_are_forgotten() {
    let mut list = VecDeque::new();
    let (c, _) = control(None);
    let a = c.register(new("s")).unwrap();
    list.push_back(Approval { created_ms: 0, ..a.clone() });
    list.push_back(Approval { id: "old".into(), state: ApprovalState::Allowed, decided_ms: Some(0), ..a });
    let now = PENDING_MAX.as_millis() as i64 + 1;
    let expired = prune(&mut list, now);
    assert_eq!(expired.len(), 1);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, ApprovalState::Expired);
}

#[test]
fn pauses_and_notes_survive_a_restart_and_notes_go_once() {
    let dir = std::env::temp_dir().join(format!("cs-control-{}", random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    {
        let (c, _) = control(Some(dir.clone()));
        c.pause("s", Some("stop")).unwrap();
        c.queue_note("s", "look at the tests").unwrap();
        c.queue_note("t", "hi").unwrap();
        assert!(c.take_notes("t").len() == 1);
    }
    let (c, bus) = control(Some(dir.clone()));
    assert_eq!(c.status("s"), Status { paused: true, message: Some("stop".into()), notes_pending: 1 });
    assert_eq!(c.status("t").notes_pending, 0);
    let notes = c.take_notes("s");
    assert_eq!(notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["look at the tests"]);
    assert!(c.take_notes("s").is_empty(), "each note is handed out once");
    c.resume("s");
    assert!(!c.status("s").paused);
    let (events, _) = bus.since(0);
    assert_eq!(events.iter().map(|e| e.kind.name()).collect::<Vec<_>>(), ["note_delivered", "session_resumed"]);
    for _ in 0..MAX_NOTES {
        c.queue_note("u", "x").unwrap();
    }
    assert!(c.queue_note("u", "x").is_err());
    let _ = std::fs::remove_dir_all(dir);
}
