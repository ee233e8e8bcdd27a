//! The scene: map, agents, ego vehicle, sensors and faults, advanced on a fixed tick.

use serde::{Deserialize, Serialize};

use crate::agent::{Agent, AgentKind, Behaviour, Fleet, Neighbour};
use crate::fault::{FaultEffect, FaultRecord, FaultSpec, Outbox, Sensor, Stamped};
use crate::frame::{AgentTruth, CameraFrame, Frame, GpsFix, GroundTruth, ImuSample, LidarSweep, RadarScan};
use crate::geometry::Vec2;
use crate::map::{signal_phase, Arm, Map};
use crate::replay::Track;
use crate::rng::SimRng;
use crate::sensors::camera::Camera;
use crate::sensors::gps::Gps;
use crate::sensors::imu::Imu;
use crate::sensors::lidar::Lidar;
use crate::sensors::radar::Radar;
use crate::sensors::{SensorsConfig, Target, WorldView};
use crate::SimError;

/// Scene configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneConfig {
    pub seed: u64,
    /// Time advanced by one [`Scene::tick`].
    pub tick_secs: f64,
    /// Physics step; the IMU samples once per substep at its default rate.
    pub substep_secs: f64,
    pub vehicles: usize,
    pub pedestrians: usize,
    pub cyclists: usize,
    /// Vehicles parked on the open ground beside the north and south arms
    /// ([`crate::map::parking_spaces`]); at most as many as there are spaces.
    #[serde(default)]
    pub parked: usize,
    /// The vehicles' bodies (default: sedans only).
    #[serde(default)]
    pub fleet: Fleet,
    pub sensors: SensorsConfig,
    /// Faults scheduled from the start.
    pub faults: Vec<FaultSpec>,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            tick_secs: 0.1,
            substep_secs: 0.01,
            vehicles: 6,
            pedestrians: 4,
            cyclists: 2,
            parked: 0,
            fleet: Fleet::Sedans,
            sensors: SensorsConfig::default(),
            faults: Vec::new(),
        }
    }
}

/// The label of the streams vehicles' bodies are drawn from ([`Agent::rebody`]), one per
/// agent id, apart from every other stream of the scene.
const FLEET_STREAM: u64 = 0xF1EE_7000_0000;

/// Most agents a scene accepts (beyond that `add_agent` refuses).
pub const MAX_AGENTS: usize = 200;
/// Most faults active or pending at once.
pub const MAX_SCHEDULED_FAULTS: usize = 64;
/// Most fault records kept (active, pending and recently ended).
pub const MAX_KEPT_FAULTS: usize = 256;
/// How far ahead of the scene time a fault may be scheduled, seconds.
pub const MAX_FAULT_LEAD_SECS: f64 = 3600.0;
/// Id of the ego vehicle.
pub const EGO_ID: u32 = 0;

/// A running scene.
#[derive(Debug)]
pub struct Scene {
    config: SceneConfig,
    map: Map,
    t_secs: f64,
    seq: u64,
    ego: Agent,
    agents: Vec<Agent>,
    next_id: u32,
    rng: SimRng,
    lidar: Lidar,
    radar: Radar,
    camera: Camera,
    imu: Imu,
    gps: Gps,
    /// Measurements taken so far per sensor; the next is due at `(fired + 1) / rate_hz`.
    fired: [u64; 5],
    /// Physics steps taken; time is derived from it so that it never accumulates rounding.
    substeps: u64,
    enabled: [bool; 5],
    faults: Vec<FaultRecord>,
    next_fault_id: u32,
    out_lidar: Outbox<LidarSweep>,
    out_radar: Outbox<RadarScan>,
    out_camera: Outbox<CameraFrame>,
    out_imu: Outbox<ImuSample>,
    out_gps: Outbox<GpsFix>,
}

macro_rules! stamped {
    ($($t:ty),*) => {$(
        impl Stamped for $t {
            fn restamp(&mut self, t_secs: f64) {
                self.t_secs = t_secs;
            }
        }
    )*};
}
stamped!(LidarSweep, RadarScan, CameraFrame, ImuSample, GpsFix);

fn sensor_index(s: Sensor) -> usize {
    s as usize
}

impl Scene {
    /// A new scene populated as the configuration says.
    pub fn new(config: SceneConfig) -> Result<Self, SimError> {
        let ratio = config.tick_secs / config.substep_secs;
        if !(config.substep_secs > 0.0 && (1.0..=10_000.0).contains(&ratio) && (ratio - ratio.round()).abs() < 1e-6) {
            return Err(SimError::InvalidConfig("tick_secs must be a whole multiple of substep_secs > 0".into()));
        }
        let rng = SimRng::new(config.seed);
        let mut setup = rng.fork(1);
        let s = &config.sensors;
        let enabled = [s.lidar.enabled, s.radar.enabled, s.camera.enabled, s.imu.enabled, s.gps.enabled];
        let ego = Agent::new_driver(EGO_ID, AgentKind::Vehicle, Arm::South, Arm::North, 20.0, &mut setup);
        let mut scene = Self {
            lidar: Lidar::new(s.lidar.clone(), rng.fork(10)),
            radar: Radar::new(s.radar.clone(), rng.fork(11)),
            camera: Camera::new(s.camera.clone(), rng.fork(12)),
            imu: Imu::new(s.imu.clone(), rng.fork(13)),
            gps: Gps::new(s.gps.clone(), rng.fork(14)),
            map: Map::street(&mut rng.fork(3)),
            t_secs: 0.0,
            seq: 0,
            ego,
            agents: Vec::new(),
            next_id: 1,
            rng: rng.fork(2),
            fired: [0; 5],
            substeps: 0,
            enabled,
            faults: Vec::new(),
            next_fault_id: 1,
            out_lidar: Outbox::default(),
            out_radar: Outbox::default(),
            out_camera: Outbox::default(),
            out_imu: Outbox::default(),
            out_gps: Outbox::default(),
            config,
        };
        for (kind, n) in [
            (AgentKind::Vehicle, scene.config.vehicles),
            (AgentKind::Pedestrian, scene.config.pedestrians),
            (AgentKind::Cyclist, scene.config.cyclists),
        ] {
            for _ in 0..n {
                scene.add_agent(kind)?;
            }
        }
        // Parked vehicles, in spaces drawn from a stream of their own (the moving agents and the
        // clutter of a seed stay as they were without them).
        let mut parking = rng.fork(4);
        let mut spaces = crate::map::parking_spaces(&mut parking);
        for _ in 0..scene.config.parked.min(spaces.len()) {
            if scene.agents.len() >= MAX_AGENTS {
                return Err(SimError::Full(MAX_AGENTS));
            }
            let (pos, yaw) = spaces.swap_remove(parking.below(spaces.len()));
            let mut car = Agent::new_parked(scene.next_id, pos, yaw, &mut parking);
            scene.rebody(&mut car);
            scene.agents.push(car);
            scene.next_id += 1;
        }
        for spec in scene.config.faults.clone() {
            scene.inject_fault(spec)?;
        }
        Ok(scene)
    }

    pub fn config(&self) -> &SceneConfig {
        &self.config
    }
    pub fn map(&self) -> &Map {
        &self.map
    }
    pub fn t_secs(&self) -> f64 {
        self.t_secs
    }
    pub fn seq(&self) -> u64 {
        self.seq
    }
    pub fn ego(&self) -> &Agent {
        &self.ego
    }
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }
    /// Every fault recorded so far (the last ten minutes' worth), scheduled ones included.
    pub fn faults(&self) -> &[FaultRecord] {
        &self.faults
    }
    pub fn sensor_enabled(&self, sensor: Sensor) -> bool {
        self.enabled[sensor_index(sensor)]
    }

    /// Starts again from the configuration with a new seed.
    pub fn reset(&mut self, seed: u64) -> Result<(), SimError> {
        let mut config = self.config.clone();
        config.seed = seed;
        *self = Scene::new(config)?;
        Ok(())
    }

    /// Gives a vehicle its body from the scene's fleet, drawn from the stream of its id.
    fn rebody(&self, agent: &mut Agent) {
        agent.rebody(self.config.fleet, &mut self.rng.fork(FLEET_STREAM ^ u64::from(agent.id)));
    }

    /// Adds an agent where there is room; returns its id.
    pub fn add_agent(&mut self, kind: AgentKind) -> Result<u32, SimError> {
        if self.agents.len() >= MAX_AGENTS {
            return Err(SimError::Full(MAX_AGENTS));
        }
        let id = self.next_id;
        let mut rng = self.rng.fork(u64::from(id) << 8);
        for _ in 0..64 {
            let agent = match kind {
                AgentKind::Pedestrian => {
                    let sidewalks: Vec<usize> =
                        (0..self.map.walk_edges.len()).filter(|e| !self.map.walk_edges[*e].crosswalk).collect();
                    let e = self.map.walk_edges[sidewalks[rng.below(sidewalks.len())]];
                    let (a, b) = if rng.chance(0.5) { (e.a, e.b) } else { (e.b, e.a) };
                    Agent::new_walker(id, &self.map, a, b, rng.range(0.05, 0.95), &mut rng)
                }
                _ => {
                    let from = Arm::ALL[rng.below(4)];
                    let to = loop {
                        let a = Arm::ALL[rng.below(4)];
                        if a != from {
                            break a;
                        }
                    };
                    let mut a = Agent::new_driver(id, kind, from, to, rng.range(0.0, 55.0), &mut rng);
                    self.rebody(&mut a);
                    a
                }
            };
            if self.has_room(&agent, 2.5) {
                self.agents.push(agent);
                self.next_id += 1;
                return Ok(id);
            }
        }
        Err(SimError::NoRoom)
    }

    fn has_room(&self, agent: &Agent, margin_m: f64) -> bool {
        let mut b = agent.bbox();
        b.length_m += 2.0 * margin_m;
        b.width_m += margin_m;
        std::iter::once(&self.ego)
            .chain(self.agents.iter())
            .filter(|o| o.id != agent.id)
            .all(|o| !b.overlaps(&o.bbox()))
    }

    /// Removes one agent.
    pub fn remove_agent(&mut self, id: u32) -> Result<(), SimError> {
        let before = self.agents.len();
        self.agents.retain(|a| a.id != id);
        if self.agents.len() == before {
            Err(SimError::UnknownAgent(id))
        } else {
            Ok(())
        }
    }

    /// Removes every agent except the ego vehicle.
    pub fn clear(&mut self) {
        self.agents.clear();
    }

    /// Replaces the agents by pedestrians replayed from recorded tracks, placed with their
    /// coordinates shifted by `offset` and their clocks started now.
    pub fn replay_tracks(&mut self, tracks: Vec<Track>, offset: Vec2) {
        self.agents.clear();
        let t0 = self.t_secs;
        for mut track in tracks.into_iter().take(MAX_AGENTS) {
            for t in &mut track.t_secs {
                *t += t0;
            }
            for p in &mut track.pos {
                *p = *p + offset;
            }
            let id = self.next_id;
            self.next_id += 1;
            let mut walker = Agent::new_walker(id, &self.map, 0, 1, 0.0, &mut self.rng);
            if let Some((pos, _)) = track.state_at(track.start_secs()) {
                walker.pos = pos;
            }
            walker.behaviour = Behaviour::Replay(track);
            self.agents.push(walker);
        }
    }

    /// Records a fault; it takes effect from its start time. Refused beyond
    /// [`MAX_SCHEDULED_FAULTS`] active or pending faults, or more than [`MAX_FAULT_LEAD_SECS`]
    /// ahead.
    pub fn inject_fault(&mut self, spec: FaultSpec) -> Result<FaultRecord, SimError> {
        let start = spec.start_secs.unwrap_or(self.t_secs);
        let magnitude = spec.magnitude.unwrap_or_else(|| spec.kind.default_magnitude(spec.sensor));
        if !(spec.duration_secs.is_finite() && spec.duration_secs > 0.0 && spec.duration_secs <= 86_400.0) {
            return Err(SimError::InvalidFault("duration_secs must be in (0, 86400]".into()));
        }
        if !(start.is_finite() && start >= 0.0 && (0.0..=1e6).contains(&magnitude)) {
            return Err(SimError::InvalidFault("start_secs and magnitude must be finite and non-negative".into()));
        }
        if start > self.t_secs + MAX_FAULT_LEAD_SECS {
            return Err(SimError::InvalidFault(format!(
                "start_secs may be at most {MAX_FAULT_LEAD_SECS} s after the scene time ({:.1} s)",
                self.t_secs
            )));
        }
        let scheduled = self.faults.iter().filter(|f| f.end_secs > self.t_secs && f.end_secs > f.start_secs).count();
        if scheduled >= MAX_SCHEDULED_FAULTS {
            return Err(SimError::InvalidFault(format!(
                "{scheduled} faults are active or pending, the most allowed; clear_faults ends them"
            )));
        }
        // Ended faults are kept a while for the truth; never more than the bound.
        while self.faults.len() >= MAX_KEPT_FAULTS {
            let Some(i) = self.faults.iter().position(|f| f.end_secs <= self.t_secs || f.end_secs <= f.start_secs)
            else {
                break;
            };
            self.faults.remove(i);
        }
        let rec = FaultRecord {
            id: self.next_fault_id,
            sensor: spec.sensor,
            kind: spec.kind,
            start_secs: start,
            end_secs: start + spec.duration_secs,
            magnitude,
        };
        self.next_fault_id += 1;
        self.faults.push(rec);
        Ok(rec)
    }

    /// Ends every active or pending fault now.
    pub fn clear_faults(&mut self) {
        let now = self.t_secs;
        for f in &mut self.faults {
            if f.end_secs > now {
                f.end_secs = now.max(f.start_secs);
            }
        }
    }

    pub fn set_sensor_enabled(&mut self, sensor: Sensor, enabled: bool) {
        self.enabled[sensor_index(sensor)] = enabled;
    }

    fn neighbours(&self) -> Vec<Neighbour> {
        std::iter::once(&self.ego).chain(self.agents.iter()).map(Agent::neighbour).collect()
    }

    fn targets(&self) -> Vec<Target> {
        self.agents.iter().map(|a| Target { id: a.id, kind: a.kind, bbox: a.bbox(), velocity: a.velocity() }).collect()
    }

    fn substep(&mut self, dt: f64) {
        let phase = signal_phase(self.t_secs);
        let neighbours = self.neighbours();
        for a in &mut self.agents {
            a.step(dt, self.t_secs, phase, &self.map, &neighbours);
        }
        self.ego.step(dt, self.t_secs, phase, &self.map, &neighbours);
        self.substeps += 1;
        self.t_secs = self.substeps as f64 * dt;
        self.agents.retain(|a| !a.finished);
        // Drivers at the end of their route re-enter from a random arm when there is room.
        let done: Vec<usize> = (0..self.agents.len()).filter(|i| self.agents[*i].route_done()).collect();
        for i in done {
            let from = Arm::ALL[self.rng.below(4)];
            let to = Arm::ALL[(from.index() + 1 + self.rng.below(3)) % 4];
            let mut candidate = self.agents[i].clone();
            candidate.restart_route(from, to);
            if self.has_room(&candidate, 6.0) {
                self.agents[i] = candidate;
            } else {
                self.agents[i].speed_mps = 0.0;
            }
        }
        if self.ego.route_done() {
            let from = Arm::ALL[self.rng.below(4)];
            let to = Arm::ALL[(from.index() + 1 + self.rng.below(3)) % 4];
            self.ego.restart_route(from, to);
        }
    }

    fn fire_sensors(&mut self) {
        let t = self.t_secs;
        let targets = self.targets();
        let world = WorldView {
            ego_pos: self.ego.pos,
            ego_yaw_rad: self.ego.yaw_rad,
            ego_velocity: self.ego.velocity(),
            ego_yaw_rate_rps: self.ego.yaw_rate_rps,
            targets: &targets,
            obstacles: &self.map.obstacles,
            clutter: &self.map.clutter,
        };
        let rates = {
            let s = &self.config.sensors;
            [s.lidar.rate_hz, s.radar.rate_hz, s.camera.rate_hz, s.imu.rate_hz, s.gps.rate_hz]
        };
        for sensor in Sensor::ALL {
            let i = sensor_index(sensor);
            let rate = rates[i].max(1e-3);
            if t + 1e-9 < (self.fired[i] + 1) as f64 / rate {
                continue;
            }
            while (self.fired[i] + 1) as f64 / rate <= t + 1e-9 {
                self.fired[i] += 1;
            }
            if !self.enabled[i] {
                continue;
            }
            let effect = FaultEffect::at(&self.faults, sensor, t);
            match sensor {
                Sensor::Lidar => {
                    let m = self.lidar.sweep(t, &world, &effect);
                    self.out_lidar.push(t, m, &effect);
                }
                Sensor::Radar => {
                    let m = self.radar.scan(t, &world, &effect);
                    self.out_radar.push(t, m, &effect);
                }
                Sensor::Camera => {
                    let m = self.camera.capture(t, &world, &effect);
                    self.out_camera.push(t, m, &effect);
                }
                Sensor::Imu => {
                    let m = self.imu.sample(t, self.ego.accel_mps2, self.ego.speed_mps, self.ego.yaw_rate_rps, &effect);
                    self.out_imu.push(t, m, &effect);
                }
                Sensor::Gps => {
                    let m = self.gps.fix(t, self.ego.pos, &effect);
                    self.out_gps.push(t, m, &effect);
                }
            }
        }
    }

    /// The truth now, without advancing: the road users where they are, the faults active now
    /// and the signal's phase (what a paused scene shows after a command).
    pub fn truth_now(&self) -> GroundTruth {
        let t = self.t_secs;
        GroundTruth {
            t_secs: t,
            ego: truth_of(&self.ego),
            agents: self.agents.iter().map(truth_of).collect(),
            faults: self.faults.iter().filter(|f| f.start_secs <= t && f.end_secs > t).copied().collect(),
            signal: signal_phase(t).0,
        }
    }

    /// Advances by one tick and returns what the sensors delivered and the truth at its end.
    pub fn tick(&mut self) -> Frame {
        let t_start = self.t_secs;
        let steps = (self.config.tick_secs / self.config.substep_secs).round().max(1.0) as usize;
        let dt = self.config.substep_secs;
        let mut frame = Frame {
            seq: self.seq,
            t_secs: 0.0,
            lidar: Vec::new(),
            radar: Vec::new(),
            camera: Vec::new(),
            imu: Vec::new(),
            gps: Vec::new(),
            truth: GroundTruth {
                t_secs: 0.0,
                ego: truth_of(&self.ego),
                agents: Vec::new(),
                faults: Vec::new(),
                signal: signal_phase(t_start).0,
            },
        };
        for _ in 0..steps {
            self.substep(dt);
            self.fire_sensors();
            let now = self.t_secs;
            self.out_lidar.release(now, &mut frame.lidar);
            self.out_radar.release(now, &mut frame.radar);
            self.out_camera.release(now, &mut frame.camera);
            self.out_imu.release(now, &mut frame.imu);
            self.out_gps.release(now, &mut frame.gps);
        }
        let t_end = self.t_secs;
        frame.t_secs = t_end;
        frame.truth.t_secs = t_end;
        frame.truth.ego = truth_of(&self.ego);
        frame.truth.agents = self.agents.iter().map(truth_of).collect();
        frame.truth.faults =
            self.faults.iter().filter(|f| f.start_secs < t_end && f.end_secs > t_start).copied().collect();
        frame.truth.signal = signal_phase(t_end).0;
        // Forget faults that ended more than ten minutes ago.
        self.faults.retain(|f| f.end_secs > t_end - 600.0);
        self.seq += 1;
        frame
    }
}

fn truth_of(a: &Agent) -> AgentTruth {
    let v = a.velocity();
    AgentTruth {
        id: a.id,
        kind: a.kind,
        x_m: a.pos.x,
        y_m: a.pos.y,
        length_m: a.length_m,
        width_m: a.width_m,
        height_m: a.height_m,
        yaw_rad: a.yaw_rad,
        vx_mps: v.x,
        vy_mps: v.y,
        yaw_rate_rps: a.yaw_rate_rps,
    }
}
