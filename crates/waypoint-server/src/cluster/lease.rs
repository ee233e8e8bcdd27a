//! Leadership and membership: every quarter lease a replica says it is alive (a sorted set of
//! last-seen times), reads who leads, and either renews its lease (a compare-and-extend script:
//! only the holder extends it) or, when nobody holds it, bids with `SET NX PX`. The leader
//! saves the scene's state with every renewal; a replica that wins the lease restores it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use waypoint_protocol::Command;
use waypoint_sim::fault::Sensor;

use super::{now_ms, Cluster, ReplicaInfo, ADDRS_KEY, LEADER_KEY, REPLICAS_KEY, SCENE_STATE_KEY};
use crate::live::scene_runner::{SceneRunner, SceneState};

/// Extends the lease only for its holder: 1 when extended, 0 when another holds it or nobody.
const RENEW: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

type Seen = (Option<String>, Vec<(String, f64)>, HashMap<String, String>);

pub(super) async fn run(c: Arc<Cluster>) {
    let mut every = tokio::time::interval(c.lease / 4);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut was_up = false;
    loop {
        every.tick().await;
        let id = c.id();
        let addr = c.addr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let lease_ms = c.lease.as_millis() as u64;
        let now = now_ms();
        let mut p = redis::pipe();
        p.cmd("ZADD")
            .arg(REPLICAS_KEY)
            .arg(now)
            .arg(&id)
            .ignore()
            .cmd("HSET")
            .arg(ADDRS_KEY)
            .arg(&id)
            .arg(&addr)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(REPLICAS_KEY)
            .arg("-inf")
            .arg(now.saturating_sub(60_000))
            .ignore()
            .cmd("GET")
            .arg(LEADER_KEY)
            .cmd("ZRANGEBYSCORE")
            .arg(REPLICAS_KEY)
            .arg(now.saturating_sub(3 * lease_ms))
            .arg("+inf")
            .arg("WITHSCORES")
            .cmd("HGETALL")
            .arg(ADDRS_KEY);
        let Some((leader, seen, addrs)) = c.link.pipe::<Seen>(&p).await else {
            if was_up {
                tracing::warn!("lost contact with the cluster's Redis");
            }
            was_up = false;
            // Nobody can take the lease while Redis is down: the leader keeps its scene. A
            // follower no longer knows who leads.
            *c.replicas.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
            if !c.is_leader() {
                c.set_leader_seen(None);
            }
            continue;
        };
        if !was_up {
            *c.contact_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        was_up = true;
        let replicas = seen
            .into_iter()
            .map(|(rid, at)| ReplicaInfo {
                addr: addrs.get(&rid).cloned().unwrap_or_default(),
                id: rid,
                last_seen_secs: (now as f64 - at).max(0.0) / 1e3,
            })
            .collect();
        *c.replicas.lock().unwrap_or_else(|p| p.into_inner()) = replicas;
        let leader = lead(&c, &id, leader, lease_ms).await;
        c.set_leader_seen(leader);
        if c.is_leader() {
            if let Some(state) = c.parts.scene.state().and_then(|s| serde_json::to_string(&s).ok()) {
                let mut cmd = redis::cmd("SET");
                cmd.arg(SCENE_STATE_KEY).arg(state);
                let _: Option<()> = c.link.run(cmd).await;
            }
        }
    }
}

/// Renews, bids or steps down; returns the leader as now known.
async fn lead(c: &Arc<Cluster>, id: &str, leader: Option<String>, lease_ms: u64) -> Option<String> {
    if c.is_leader() {
        let mut renew = redis::cmd("EVAL");
        renew.arg(RENEW).arg(1).arg(LEADER_KEY).arg(id).arg(lease_ms);
        match leader.as_deref() {
            Some(l) if l == id => match c.link.run::<i64>(renew).await {
                Some(1) | None => return Some(id.to_string()),
                Some(_) => {}
            },
            // The key expired (Redis restarted): this leader bids first, the others wait.
            None if bid(c, id, lease_ms).await => return Some(id.to_string()),
            _ => {}
        }
        tracing::warn!(replica = id, "lost the lease to another replica: following");
        c.leading.store(false, Ordering::Relaxed);
        c.parts.scene.set_leading(false);
        return leader;
    }
    let settled = c.contact_since.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t.elapsed() >= c.lease);
    if leader.is_none() && settled && bid(c, id, lease_ms).await {
        take_over(c).await;
        return Some(id.to_string());
    }
    leader
}

async fn bid(c: &Cluster, id: &str, lease_ms: u64) -> bool {
    let mut cmd = redis::cmd("SET");
    cmd.arg(LEADER_KEY).arg(id).arg("NX").arg("PX").arg(lease_ms);
    matches!(c.link.run::<Option<String>>(cmd).await, Some(Some(_)))
}

/// Becomes the leader: goes on with the scene the last leader saved, then runs it.
async fn take_over(c: &Arc<Cluster>) {
    let mut get = redis::cmd("GET");
    get.arg(SCENE_STATE_KEY);
    let saved: Option<SceneState> =
        c.link.run::<Option<String>>(get).await.flatten().and_then(|s| serde_json::from_str(&s).ok());
    if let Some(state) = &saved {
        restore(&c.parts.scene, state).await;
    }
    c.leading.store(true, Ordering::Relaxed);
    c.parts.scene.set_leading(true);
    c.stats.takeovers.fetch_add(1, Ordering::Relaxed);
    tracing::info!(replica = %c.id(), restored = saved.is_some(), "leading the cluster");
}

/// The commands that rebuild `state` on a fresh scene: the same seed and settings, and the
/// faults not over yet moved to the new scene's clock (agents added or removed by hand are not
/// carried over).
pub fn restore_commands(state: &SceneState) -> Vec<Command> {
    let mut cmds = vec![
        Command::Reset { seed: state.seed },
        Command::SetRate { speed: state.speed },
        Command::SetThreshold { value: state.threshold },
    ];
    for (sensor, enabled) in Sensor::ALL.iter().zip(state.sensors_enabled) {
        cmds.push(Command::SetSensor { sensor: *sensor, enabled });
    }
    for f in state.faults.iter().filter(|f| f.end_secs > state.t_secs) {
        let start = f.start_secs.max(state.t_secs);
        cmds.push(Command::InjectFault {
            sensor: f.sensor,
            fault: f.kind,
            duration_secs: f.end_secs - start,
            magnitude: Some(f.magnitude),
            start_secs: Some(start - state.t_secs),
        });
    }
    cmds.push(if state.running { Command::Start } else { Command::Stop });
    cmds
}

async fn restore(scene: &SceneRunner, state: &SceneState) {
    for cmd in restore_commands(state) {
        if let Err(e) = scene.command_local(cmd.clone()).await {
            tracing::warn!(?cmd, error = %e, "could not restore part of the scene");
        }
    }
}

#[cfg(test)]
mod tests {
    use waypoint_sim::fault::{FaultKind, FaultRecord};

    use super::*;

    #[test]
    fn restoring_moves_the_faults_still_to_come_to_the_new_clock() {
        let fault = |id, start_secs, end_secs| FaultRecord {
            id,
            sensor: Sensor::Lidar,
            kind: FaultKind::Dropout,
            start_secs,
            end_secs,
            magnitude: 0.5,
        };
        let state = SceneState {
            seed: 7,
            running: true,
            speed: 2.0,
            sensors_enabled: [true, false, true, true, true],
            threshold: 0.4,
            t_secs: 100.0,
            faults: vec![fault(1, 10.0, 20.0), fault(2, 95.0, 105.0), fault(3, 130.0, 140.0)],
        };
        let cmds = restore_commands(&state);
        assert_eq!(cmds[0], Command::Reset { seed: 7 });
        assert!(cmds.contains(&Command::SetRate { speed: 2.0 }));
        assert!(cmds.contains(&Command::SetSensor { sensor: Sensor::ALL[1], enabled: false }));
        let faults: Vec<(f64, f64)> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::InjectFault { start_secs, duration_secs, .. } => Some((start_secs.unwrap(), *duration_secs)),
                _ => None,
            })
            .collect();
        // The one over is dropped; the running one goes on for what is left; the scheduled one
        // keeps its distance from now.
        assert_eq!(faults, vec![(0.0, 5.0), (30.0, 10.0)]);
        assert_eq!(cmds.last(), Some(&Command::Start));
    }
}
