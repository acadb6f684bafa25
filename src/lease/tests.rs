use std::time::{Duration, SystemTime};

use super::fenced::{Fenced, FRESH};
use super::*;
use crate::router::fake::FakeRouter;
use crate::router::{Color, Record, Split};

fn router() -> FakeRouter {
    FakeRouter::new(Split::all_on(Color::Blue), None, &["10.0.0.1"], &[])
}

#[test]
fn a_lease_reads_back_as_written_and_names_its_holder() {
    let lease = Lease {
        id: "00ff".into(),
        expires: 1_765_000_000,
        pid: 4242,
        started: 1_764_999_000,
        host: "ci-runner-7".into(),
        owner: Some("https://ci.example/job/5;x".into()),
    };
    assert_eq!(Lease::decode(&lease.encode()), Some(lease.clone()));
    assert_eq!(
        lease.to_string(),
        "process 4242 on ci-runner-7 (started 2025-12-06T05:30:00Z, owner https://ci.example/job/5;x)"
    );
    assert!(lease.expired(SystemTime::UNIX_EPOCH + Duration::from_secs(1_765_000_000)));
    assert!(!lease.expired(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_999_999)));
    let long = Lease {
        owner: Some("é".repeat(300)),
        ..lease
    };
    assert!(long.encode().len() <= 256);
    assert_eq!(Lease::decode("garbage"), None);
}

#[tokio::test]
async fn a_second_writer_is_refused_naming_the_holder_until_the_lease_is_given_back() {
    let router = router();
    let held = acquire(&router)
        .await
        .expect("the first writer takes the lease");
    let refused = while_held(&router, &held, async {
        match acquire(&router).await {
            Err(Refused::Held(why)) => why,
            other => panic!("a second writer took the lease: {other:?}"),
        }
    })
    .await;
    assert!(
        refused.contains("is being released by another writer: process"),
        "{refused}"
    );
    assert!(
        refused.contains("Nothing was changed; traffic was not moved"),
        "{refused}"
    );
    assert!(refused.contains("fake break"), "{refused}");
    assert_eq!(router.state().lease, None, "the lease is given back");
    assert!(acquire(&router).await.is_ok(), "free again");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let router = router();
    let dead = Lease {
        expires: 1,
        ..Lease::new()
    };
    router.state().lease = Some(dead.encode());
    let held = acquire(&router).await.expect("an expired lease is taken");
    assert!(held.is_mine(router.state().lease.as_deref()));
}

#[tokio::test]
async fn of_two_writers_racing_only_the_last_to_write_keeps_the_lease() {
    let router = router();
    let (a, b) = tokio::join!(acquire(&router), acquire(&router));
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "exactly one of two racing writers holds the lease: {a:?} {b:?}"
    );
}

#[tokio::test]
async fn a_fenced_write_stops_once_another_writer_holds_the_lease_or_changed_a_record() {
    let router = router();
    let held = acquire(&router).await.unwrap();
    let fenced = Fenced::new(&router, &held, Default::default());
    fenced
        .set_record(
            Color::Green,
            &Record {
                release: Some("v2".into()),
                generation: Some(2),
                rolled_back_at: None,
            },
        )
        .await
        .expect("the lease holder writes");
    fenced
        .set_weights(Split::percent(Color::Green, 10))
        .await
        .expect("the records are as it left them");

    router.state().records[1].generation = Some(3);
    tokio::time::sleep(FRESH).await;
    let error = fenced
        .set_weights(Split::all_on(Color::Green))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("records"), "{error}");
    router.state().records[1].generation = Some(2);

    router.state().lease = Some(Lease::new().encode());
    tokio::time::sleep(FRESH).await;
    let error = fenced
        .set_weights(Split::all_on(Color::Green))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("took the lease"), "{error}");
    assert_eq!(
        router.state().split,
        Split::percent(Color::Green, 10),
        "no write past a fence"
    );
}

#[tokio::test]
async fn a_release_in_this_process_takes_the_lease_held_open_for_the_run_and_leaves_it_open() {
    let router = router();
    let open = hold_open(&router)
        .await
        .expect("the ephemeral resource takes the lease");
    let written = router.state().lease.clone();
    let release = acquire(&router)
        .await
        .expect("a release in the same process is not refused by the lease held open");
    assert!(
        release.is_mine(written.as_deref()),
        "it takes that lease as its own"
    );
    assert_eq!(router.state().lease, written, "without writing");
    while_held(&router, &release, async {}).await;
    assert_eq!(
        router.state().lease,
        written,
        "the release's end does not give back the lease held open"
    );
    assert!(renew(&router, &open).await.is_ok());
    close(&router, &open).await;
    assert_eq!(router.state().lease, None, "closing gives it back");
    let next = acquire(&router).await.expect("free again");
    while_held(&router, &next, async {}).await;
    assert_eq!(
        router.state().lease,
        None,
        "a lease of its own is given back"
    );
}

#[tokio::test]
async fn a_lease_held_open_but_since_taken_by_another_writer_is_not_borrowed() {
    let router = router();
    let open = hold_open(&router).await.unwrap();
    let other = Lease::new();
    router.state().lease = Some(other.encode());
    match acquire(&router).await {
        Err(Refused::Held(why)) => assert!(why.contains(&other.to_string()), "{why}"),
        taken => panic!("the other writer's lease was taken: {taken:?}"),
    }
    assert!(
        matches!(renew(&router, &open).await, Err(NotRenewed::Lost)),
        "renewing says it was lost"
    );
    close(&router, &open).await;
    assert_eq!(
        router.state().lease,
        Some(other.encode()),
        "closing leaves the other writer's lease alone"
    );
}

#[tokio::test]
async fn a_lease_whose_holder_on_this_host_is_gone_is_taken_over() {
    let router = router();
    let dead = Lease {
        pid: u32::MAX,
        ..Lease::new()
    };
    assert!(!dead.binds(SystemTime::now()));
    router.state().lease = Some(dead.encode());
    acquire(&router)
        .await
        .expect("a dead holder's lease is taken");
    let elsewhere = Lease {
        pid: u32::MAX,
        host: "another-host".into(),
        ..Lease::new()
    };
    assert!(
        elsewhere.binds(SystemTime::now()),
        "a holder elsewhere cannot be seen"
    );
}
