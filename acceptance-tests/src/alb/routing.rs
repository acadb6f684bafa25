//! How a request is routed, as ALB does it: the listener's rules by priority, else its default
//! action in force for the data plane; a forward draws a target group by weight (weight 0 is
//! never drawn), then a target of that group round robin among the healthy ones. A group
//! without a healthy target fails open to all its registered targets that are not draining;
//! nothing fails over between groups. A draining target gets no new requests.

use std::net::SocketAddr;
use std::time::Instant;

use super::checks::loopback;
use super::dataplane::{RequestHead, Route};
use super::model::ActionModel;
use super::state::{Group, State, TargetKey};

/// Draws a group with a chance proportional to its weight. `None` when every weight is 0.
pub fn draw_group<'a>(groups: &'a [(String, u32)], rng: &mut fastrand::Rng) -> Option<&'a str> {
    let total: u64 = groups.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.u64(0..total);
    for (arn, weight) in groups {
        if roll < u64::from(*weight) {
            return Some(arn);
        }
        roll -= u64::from(*weight);
    }
    None
}

/// The targets a request to this group may go to, with their loopback addresses: the healthy
/// ones, else every registered one that is not draining (fail open). Targets that are not on
/// loopback are never connected to, so they are never candidates.
fn candidates(group: &Group) -> Vec<(&TargetKey, SocketAddr)> {
    let reachable = |healthy_only: bool| -> Vec<(&TargetKey, SocketAddr)> {
        group
            .targets
            .iter()
            .filter(|(_, t)| !t.draining() && (!healthy_only || t.healthy()))
            .filter_map(|(key, _)| Some((key, loopback(&key.0, key.1)?)))
            .collect()
    };
    let healthy = reachable(true);
    if healthy.is_empty() {
        reachable(false)
    } else {
        healthy
    }
}

impl State {
    /// Routes one request of a listener at `now`, and counts it.
    pub fn route(
        &mut self,
        listener_arn: &str,
        request: &RequestHead<'_>,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Route {
        let Some(listener) = self.listeners.get_mut(listener_arn) else {
            return Route::Unavailable(format!("listener {listener_arn} does not exist"));
        };
        let groups = match listener.route(request, now) {
            ActionModel::Forward(groups) => groups,
            ActionModel::Fixed {
                status,
                content_type,
                body,
            } => {
                return Route::Fixed {
                    status,
                    content_type,
                    body,
                }
            }
            ActionModel::Other(what) => {
                return Route::Unavailable(format!("the emulator does not serve {what} actions"))
            }
        };
        let Some(arn) = draw_group(&groups, rng) else {
            return Route::Unavailable("every target group has weight 0".into());
        };
        let arn = arn.to_string();
        let Some(group) = self.groups.get_mut(&arn) else {
            return Route::Unavailable(format!("target group {arn} has no registered target"));
        };
        group.prune(now);
        let picked = {
            let candidates = candidates(group);
            if candidates.is_empty() {
                None
            } else {
                let (key, addr) = candidates[group.next % candidates.len()];
                Some((key.clone(), addr))
            }
        };
        let Some((key, addr)) = picked else {
            return Route::Unavailable(format!("target group {arn} has no registered target"));
        };
        group.next = group.next.wrapping_add(1);
        let counted = (arn.clone(), key.clone());
        *self.served.entry(counted.clone()).or_default() += 1;
        *self.in_flight.entry(counted).or_default() += 1;
        Route::Target {
            target_group: arn,
            id: key.0,
            addr,
        }
    }

    /// A routed request finished.
    pub fn finished(&mut self, target_group: &str, id: &str, addr: SocketAddr) {
        let key = (target_group.to_string(), (id.to_string(), addr.port()));
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::health::{TargetHealth, Thresholds};
    use crate::alb::model::ListenerModel;
    use std::time::Duration;

    const THRESHOLDS: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 2,
    };

    fn groups(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(a, w)| (a.to_string(), *w)).collect()
    }

    #[test]
    fn draws_follow_the_weights_and_never_pick_weight_zero() {
        let mut rng = fastrand::Rng::with_seed(7);
        let weighted = groups(&[("blue", 75), ("green", 25), ("grey", 0)]);
        let mut blue = 0;
        for _ in 0..4000 {
            match draw_group(&weighted, &mut rng) {
                Some("blue") => blue += 1,
                Some("green") => {}
                other => panic!("drew {other:?}"),
            }
        }
        assert!((2800..3200).contains(&blue), "{blue}");
        assert_eq!(draw_group(&groups(&[("a", 0)]), &mut rng), None);
        assert_eq!(draw_group(&[], &mut rng), None);
    }

    fn target(now: Instant, healthy: bool) -> TargetHealth {
        let mut t = TargetHealth::new(now);
        if healthy {
            t.record(Ok(()), THRESHOLDS);
        }
        t
    }

    fn state(now: Instant, targets: Vec<(&str, u16, TargetHealth)>) -> State {
        let mut state = State::default();
        let action = ActionModel::Forward(groups(&[("tg", 1)]));
        state.listeners.insert(
            "l".into(),
            ListenerModel::new("lb".into(), 80, "HTTP".into(), action, now),
        );
        let group = state.groups.entry("tg".into()).or_default();
        for (id, port, health) in targets {
            group.targets.insert((id.to_string(), port), health);
        }
        state
    }

    fn route_ports(state: &mut State, now: Instant, n: usize) -> Vec<Option<u16>> {
        let mut rng = fastrand::Rng::with_seed(1);
        let head = RequestHead {
            method: "GET",
            path: "/",
            query: None,
            headers: &[],
        };
        (0..n)
            .map(|_| match state.route("l", &head, now, &mut rng) {
                Route::Target { addr, .. } => Some(addr.port()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn healthy_targets_round_robin_and_unhealthy_ones_only_when_none_is_healthy() {
        let now = Instant::now();
        let mut s = state(
            now,
            vec![
                ("127.0.0.1", 1, target(now, true)),
                ("127.0.0.1", 2, target(now, false)),
                ("127.0.0.1", 3, target(now, true)),
            ],
        );
        assert_eq!(
            route_ports(&mut s, now, 4),
            [Some(1), Some(3), Some(1), Some(3)]
        );
        let key = ("tg".to_string(), ("127.0.0.1".to_string(), 1));
        assert_eq!(s.served[&key], 2);
        assert_eq!(s.in_flight[&key], 2);
        s.finished("tg", "127.0.0.1", "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.in_flight[&key], 1);

        // Fail open: nothing healthy, so every target that is not draining.
        let mut s = state(
            now,
            vec![
                ("127.0.0.1", 1, target(now, false)),
                ("127.0.0.1", 2, target(now, false)),
                ("10.0.0.1", 3, target(now, false)),
            ],
        );
        let mut draining = target(now, true);
        draining.deregister(now, Duration::from_secs(5));
        s.groups
            .get_mut("tg")
            .unwrap()
            .targets
            .insert(("127.0.0.1".into(), 4), draining);
        assert_eq!(route_ports(&mut s, now, 3), [Some(1), Some(2), Some(1)]);
    }

    #[test]
    fn no_target_is_unavailable_and_fixed_responses_answer_from_the_load_balancer() {
        let now = Instant::now();
        let mut s = state(now, vec![]);
        assert_eq!(route_ports(&mut s, now, 1), [None]);
        let mut rng = fastrand::Rng::with_seed(1);
        let head = RequestHead {
            method: "GET",
            path: "/",
            query: None,
            headers: &[],
        };
        assert!(matches!(
            s.route("gone", &head, now, &mut rng),
            Route::Unavailable(_)
        ));
        let fixed = ActionModel::Fixed {
            status: 418,
            content_type: Some("text/plain".into()),
            body: "tea".into(),
        };
        s.listeners.insert(
            "f".into(),
            ListenerModel::new("lb".into(), 81, "HTTP".into(), fixed, now),
        );
        assert_eq!(
            s.route("f", &head, now, &mut rng),
            Route::Fixed {
                status: 418,
                content_type: Some("text/plain".into()),
                body: "tea".into()
            }
        );
    }
}
