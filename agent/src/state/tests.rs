use super::*;
use crate::structs::{
    health, Check, DeregisterRequest, KvOp, KvVerb, Node, RegisterRequest, Service, Session,
};

fn node(name: &str) -> Node {
    Node {
        node: name.into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        ..Default::default()
    }
}

fn svc(name: &str, id: &str) -> Service {
    Service {
        id: id.into(),
        service: name.into(),
        port: 80,
        weights_passing: 1,
        weights_warning: 1,
        ..Default::default()
    }
}

fn reg(n: &str, s: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(RegisterRequest {
        node: node(n),
        skip_node_update: false,
        service: s,
        checks,
    })
}

fn kv(verb: KvVerb, key: &str, value: &str, index: u64, session: &str) -> Command {
    Command::Kv(KvOp {
        verb,
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        index,
        session: session.into(),
    })
}

#[test]
fn register_is_indexed_per_service_and_wakes_only_its_watchers() {
    let st = Store::new();
    let mut web = st.watch(&WatchKey::Service("web".into()));
    let db = st.watch(&WatchKey::Service("db".into()));
    st.apply(1, &reg("n1", Some(svc("web", "web1")), vec![]));
    assert!(web.has_changed().unwrap());
    assert!(!db.has_changed().unwrap());
    web.borrow_and_update();
    st.apply(2, &reg("n1", Some(svc("db", "db1")), vec![]));
    assert!(
        !web.has_changed().unwrap(),
        "a db write must not wake web watchers"
    );
    assert!(db.has_changed().unwrap());
    st.read(|t| {
        assert_eq!(t.service_index("web"), 1);
        assert_eq!(t.service_index("db"), 2);
        assert_eq!(t.service_instances("web").len(), 1);
        assert_eq!(t.node("n1").unwrap().create_index, 1);
    });
    // Re-registering the same thing changes nothing.
    st.apply(3, &reg("n1", Some(svc("web", "web1")), vec![]));
    st.read(|t| assert_eq!(t.service_index("web"), 1));
}

#[test]
fn node_check_touches_every_service_on_the_node() {
    let st = Store::new();
    st.apply(1, &reg("n1", Some(svc("web", "web1")), vec![]));
    let serf = Check {
        check_id: "serfHealth".into(),
        status: health::CRITICAL.into(),
        ..Default::default()
    };
    st.apply(2, &reg("n1", None, vec![serf]));
    st.read(|t| {
        assert_eq!(t.service_index("web"), 2);
        assert_eq!(t.instance_checks("n1", "web1").len(), 1);
    });
}

#[test]
fn check_for_unknown_service_is_refused_whole() {
    let st = Store::new();
    let c = Check {
        check_id: "c".into(),
        service_id: "nope".into(),
        ..Default::default()
    };
    let r = st.apply(1, &reg("n1", None, vec![c]));
    assert!(!r.ok);
    st.read(|t| assert!(t.node("n1").is_none(), "nothing half-applied"));
}

#[test]
fn deregister_service_removes_its_checks_and_bumps_index() {
    let st = Store::new();
    let c = Check {
        check_id: "service:web1".into(),
        service_id: "web1".into(),
        status: "passing".into(),
        ..Default::default()
    };
    st.apply(1, &reg("n1", Some(svc("web", "web1")), vec![c]));
    st.apply(
        2,
        &Command::Deregister(DeregisterRequest {
            node: "n1".into(),
            service_id: Some("web1".into()),
            check_id: None,
        }),
    );
    st.read(|t| {
        assert!(t.service_instances("web").is_empty());
        assert_eq!(t.all_checks().count(), 0);
        assert_eq!(
            t.service_index("web"),
            2,
            "a deleted service keeps a higher index"
        );
    });
}

#[test]
fn kv_cas_lock_and_tombstones() {
    let st = Store::new();
    assert!(st.apply(1, &kv(KvVerb::Cas, "a", "1", 0, "")).ok);
    assert!(
        !st.apply(2, &kv(KvVerb::Cas, "a", "2", 0, "")).ok,
        "cas=0 only creates"
    );
    assert!(!st.apply(3, &kv(KvVerb::Cas, "a", "2", 7, "")).ok);
    assert!(st.apply(4, &kv(KvVerb::Cas, "a", "2", 1, "")).ok);
    st.read(|t| {
        let e = t.kv_get("a").unwrap();
        assert_eq!(
            (e.create_index, e.modify_index, e.value.as_slice()),
            (1, 4, &b"2"[..])
        );
    });
    st.apply(5, &kv(KvVerb::Delete, "a", "", 0, ""));
    st.read(|t| {
        assert!(t.kv_get("a").is_none());
        assert_eq!(t.kv_key_index("a"), 5);
        assert_eq!(t.kv_prefix_index(""), 5);
    });
    // Locks need a session.
    st.apply(6, &reg("n1", None, vec![]));
    let s = Session {
        id: "s1".into(),
        node: "n1".into(),
        behavior: "release".into(),
        lock_delay_ns: 1_000_000_000,
        ..Default::default()
    };
    assert!(st.apply(7, &Command::SessionCreate(s)).ok);
    assert!(st.apply(8, &kv(KvVerb::Lock, "l", "x", 0, "s1")).ok);
    assert!(!st.apply(9, &kv(KvVerb::Lock, "l", "x", 0, "other")).ok);
    st.read(|t| assert_eq!(t.kv_get("l").unwrap().lock_index, 1));
    st.apply(10, &Command::SessionDestroy { id: "s1".into() });
    st.read(|t| {
        assert!(
            t.kv_get("l").unwrap().session.is_empty(),
            "release behaviour"
        )
    });
    assert!(st.in_lock_delay("l"));
}

#[test]
fn txn_is_all_or_nothing() {
    let st = Store::new();
    let ops = vec![
        KvOp {
            verb: KvVerb::Set,
            key: "x".into(),
            value: b"1".to_vec(),
            flags: 0,
            index: 0,
            session: String::new(),
        },
        KvOp {
            verb: KvVerb::CheckIndex,
            key: "y".into(),
            value: vec![],
            flags: 0,
            index: 9,
            session: String::new(),
        },
    ];
    let r = st.apply(1, &Command::Txn(ops));
    assert!(!r.ok);
    assert_eq!(r.errors[0].0, 1);
    st.read(|t| assert!(t.kv_get("x").is_none()));
}

#[test]
fn snapshot_round_trip() {
    let st = Store::new();
    st.apply(1, &reg("n1", Some(svc("web", "web1")), vec![]));
    st.apply(2, &kv(KvVerb::Set, "k", "v", 0, ""));
    let snap = st.snapshot();
    let other = Store::new();
    other.restore(&snap).unwrap();
    other.read(|t| {
        assert_eq!(t.last_index, 2);
        assert_eq!(t.service_instances("web").len(), 1, "derived index rebuilt");
        assert_eq!(t.kv_get("k").unwrap().value, b"v");
    });
}
