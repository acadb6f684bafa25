//! The parts of the HAProxy router that need no HAProxy; the router against a real one is
//! tested by the acceptance suite (acceptance-tests/tests/haproxy.rs).

use super::*;

fn stat(status: &str, check_status: &str, code: Option<u16>) -> ServerStat {
    ServerStat {
        name: "blue_1".into(),
        addr: "127.0.0.1".into(),
        port: 8080,
        status: status.into(),
        weight: 0,
        check_status: check_status.into(),
        check_code: code,
        check_desc: "HTTP status check returned code <503>".into(),
        scur: 0,
        idle: 0,
    }
}

#[test]
fn a_split_becomes_per_server_weights_whatever_the_colour_sizes() {
    // Same sizes: the percentages, scaled to HAProxy's 256.
    assert_eq!(server_weight(100, 1, 1), 256);
    assert_eq!(server_weight(0, 1, 1), 0);
    assert_eq!(server_weight(20, 2, 2), 51);
    // Two blue servers at 90%, one green at 10%: 2 x 115 against 26 is 89.8%.
    let (blue, green) = (server_weight(90, 2, 1), server_weight(10, 1, 1));
    let share = f64::from(2 * blue) / f64::from(2 * blue + green);
    assert!((share - 0.9).abs() < 0.01, "{blue} {green} {share}");
    // A tiny share never rounds to no traffic at all.
    assert_eq!(server_weight(1, 8, 1), 1);
}

#[test]
fn servers_are_ours_by_name_and_their_state_is_in_words() {
    assert_eq!(HaproxyRouter::colour_of("green_12"), Some(Color::Green));
    assert_eq!(HaproxyRouter::colour_of("web1"), None);
    assert_eq!(HaproxyRouter::colour_of("blue_x"), None);
    assert_eq!(
        member_health(&stat("UP", "L7OK", Some(200))).state,
        MemberState::Healthy
    );
    assert_eq!(
        member_health(&stat("UP", "INI", None)).state,
        MemberState::Initial
    );
    let down = member_health(&stat("DOWN", "L7STS", Some(503)));
    assert_eq!(down.state, MemberState::Unhealthy);
    let detail = down.detail.unwrap();
    assert!(
        detail.contains("L7STS 503") && detail.contains("<503>"),
        "{detail}"
    );
    assert_eq!(
        member_health(&stat("MAINT", "", None)).state,
        MemberState::Unchecked
    );
    assert_eq!(
        member_health(&stat("DRAIN", "L7OK", None)).state,
        MemberState::Draining
    );
    assert_eq!(
        member_health(&stat("DOWN 1/2", "L7OK", None)).state,
        MemberState::Initial
    );
    assert_eq!(
        member_health(&stat("UP 1/3", "L7STS", None)).state,
        MemberState::Unhealthy
    );
}

#[test]
fn records_survive_any_release_text_and_any_backend_name() {
    let router = HaproxyRouter::new(
        Transport::Local("/nonexistent.sock".into()),
        "web-app_2:x".into(),
        String::new(),
        None,
    );
    assert_eq!(
        router.variable(Color::Blue, "release"),
        "proc.immutable_web_2dapp_5f2_3ax_blue_release"
    );
    let release = "sha256:ab/cd ef(1);\"";
    assert_eq!(unhex(&hex(release)).as_deref(), Some(release));
    let reply = "proc.a_release: type=str value=<h7631>\nVariable not found.\nproc.a_generation: type=sint value=<4>\n";
    assert_eq!(variable_value(reply, "proc.a_release"), Some("h7631"));
    assert_eq!(variable_value(reply, "proc.a_generation"), Some("4"));
    assert_eq!(variable_value(reply, "proc.b_release"), None);
    assert_eq!(
        address(&Target {
            id: "::1".into(),
            port: Some(81),
            availability_zone: None
        }),
        "[::1]:81"
    );
}

#[test]
fn the_fragment_keeps_the_users_backend_lines_and_rewrites_only_its_own_part() {
    let user = "backend web\n    balance roundrobin\n    option httpchk GET /health\n";
    let mut up = stat("UP", "L7OK", Some(200));
    up.weight = 256;
    let mut maint = stat("MAINT", "", None);
    maint.name = "green_1".into();
    maint.addr = "::1".into();
    let variables = [(
        "proc.immutable_web_blue_release".to_string(),
        "str(h7631)".to_string(),
    )];
    let first = fragment::render(
        user,
        &[up.clone(), maint],
        "inter 2s rise 3 fall 3",
        &variables,
    );
    assert!(first.starts_with(user), "{first}");
    assert!(
        first
            .contains("    server blue_1 127.0.0.1:8080 check inter 2s rise 3 fall 3 weight 256\n"),
        "{first}"
    );
    assert!(
        first.contains(
            "    server green_1 [::1]:8080 check inter 2s rise 3 fall 3 weight 0 disabled\n"
        ),
        "{first}"
    );
    assert!(
        first.contains("global\n    set-var proc.immutable_web_blue_release str(h7631)\n"),
        "{first}"
    );
    // Written again: the user's part once, ours replaced.
    let second = fragment::render(&first, &[up], "inter 2s rise 3 fall 3", &[]);
    assert_eq!(second.matches("balance roundrobin").count(), 1);
    assert!(
        !second.contains("green_1") && !second.contains("global"),
        "{second}"
    );
}

#[tokio::test]
async fn records_are_read_from_variables_and_any_other_reply_is_an_error() {
    let router = |transport| HaproxyRouter::new(transport, "web".into(), String::new(), None);
    // As HAProxy 2.6.12 answers: experimental mode, then each variable or its absence.
    let (found, _) = runtime::tests::fake(|_| {
        "\nproc.immutable_web_blue_release: type=str value=<h7631>\nproc.immutable_web_blue_generation: type=sint value=<3>\nVariable not found.\n\nVariable not found.\n".into()
    });
    let [blue, green] = router(found).records().await.unwrap();
    assert_eq!(
        (blue.release.as_deref(), blue.generation),
        (Some("v1"), Some(3))
    );
    assert_eq!((green.release, green.generation), (None, None));
    // Not a colour without a record: an error.
    let (refused, _) = runtime::tests::fake(|_| "Permission denied\n\n".into());
    let e = router(refused).records().await.unwrap_err().to_string();
    assert!(e.contains("Permission denied"), "{e}");
}
