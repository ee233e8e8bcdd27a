// The operator's controls. Each sends a scene command (through the worker's WebSocket) or a
// model-routing request and shows what came back.

import { authHeaders } from "./auth";
import { CLASSES, FAULTS, SENSORS, type SceneMsg, type StatsSnapshot } from "./protocol";

export type SendCommand = (command: Record<string, unknown>) => Promise<unknown>;

function button(text: string, id: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.textContent = text;
  b.id = id;
  b.addEventListener("click", onClick);
  return b;
}

function select(id: string, label: string, options: readonly string[], value?: string): HTMLSelectElement {
  const s = document.createElement("select");
  s.id = id;
  s.setAttribute("aria-label", label);
  for (const o of options) s.append(new Option(o, o, false, o === value));
  return s;
}

function numberInput(id: string, label: string, props: Partial<Pick<HTMLInputElement, "value" | "min" | "step" | "placeholder">>): HTMLInputElement {
  const i = Object.assign(document.createElement("input"), { type: "number", id }, props);
  i.setAttribute("aria-label", label);
  return i;
}

function group(label: string, ...children: HTMLElement[]): HTMLElement {
  const g = document.createElement("div");
  g.className = "group";
  const l = document.createElement("span");
  l.className = "label";
  l.textContent = label;
  g.append(l, ...children);
  return g;
}

/** Scene speeds offered (scene seconds per wall-clock second). */
const SPEEDS = [0.25, 0.5, 1, 2, 4, 10];

export class Controls {
  private readonly status: HTMLElement;
  private readonly runButton: HTMLButtonElement;
  private readonly sensorBoxes = new Map<string, HTMLInputElement>();
  private readonly versionSelect: HTMLSelectElement;
  private readonly speedSelect: HTMLSelectElement;
  private running = true;
  /** The scene's time as last reported (a fault's start is given from it). */
  private sceneT = 0;
  private versionsKey = "";

  constructor(
    root: HTMLElement,
    private readonly send: SendCommand,
    private readonly base: string,
  ) {
    this.status = document.createElement("span");
    this.status.id = "command-status";
    this.status.className = "status";
    // Command results are announced to screen readers as they arrive.
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");
    this.runButton = button("Stop", "run", () => void this.run({ op: this.running ? "stop" : "start" }));
    const seed = numberInput("seed", "seed for reset", { value: "42", min: "0" });
    const kind = select("agent-kind", "kind of agent to add", CLASSES, "vehicle");
    const sensor = select("fault-sensor", "sensor to fault", SENSORS, "gps");
    const fault = select("fault-kind", "kind of fault", FAULTS, "spike");
    const duration = numberInput("fault-duration", "fault duration, seconds", { value: "5", min: "0.1", step: "0.5" });
    const magnitude = numberInput("fault-magnitude", "fault magnitude (blank: the kind's default)", {
      placeholder: "size",
      min: "0",
      step: "0.1",
    });
    const delay = numberInput("fault-delay", "fault starts in, seconds of scene time (blank: now)", {
      placeholder: "in s",
      min: "0",
      step: "1",
    });
    const sensors = document.createElement("span");
    for (const s of SENSORS) {
      const l = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.id = `sensor-${s}`;
      box.addEventListener("change", () => void this.run({ op: "set_sensor", sensor: s, enabled: box.checked }));
      this.sensorBoxes.set(s, box);
      l.append(box, ` ${s}`);
      sensors.append(l);
    }
    // Scene seconds per wall-clock second, for everyone watching (the server allows 0.1 to 10).
    this.speedSelect = select("scene-speed", "scene speed (scene seconds per second)", SPEEDS.map(String), "1");
    for (const o of this.speedSelect.options) o.textContent = `${o.value}×`;
    this.speedSelect.addEventListener("change", () => void this.run({ op: "set_rate", speed: Number(this.speedSelect.value) }));
    this.versionSelect = select("trajectory-version", "trajectory model version", ["newest"]);
    this.versionSelect.addEventListener("change", () => void this.pickVersion(this.versionSelect.value));
    root.append(
      group(
        "scene",
        this.runButton,
        button("Reset", "reset", () => void this.run({ op: "reset", seed: Number(seed.value) || 0 })),
        seed,
        this.speedSelect,
      ),
      group("agents", kind, button("Add", "add-agent", () => void this.run({ op: "add_agent", kind: kind.value })), button("Clear", "clear", () => void this.run({ op: "clear" }))),
      group(
        "fault",
        sensor,
        fault,
        duration,
        magnitude,
        delay,
        button("Inject", "inject-fault", () => {
          const command: Record<string, unknown> = { op: "inject_fault", sensor: sensor.value, fault: fault.value, duration_secs: Number(duration.value) || 5 };
          if (magnitude.value !== "") command.magnitude = Number(magnitude.value);
          if (delay.value !== "") command.start_secs = this.sceneT + Number(delay.value);
          void this.run(command);
        }),
        button("Clear faults", "clear-faults", () => void this.run({ op: "clear_faults" })),
      ),
      group("sensors", sensors),
      group("trajectory model", this.versionSelect),
      this.status,
    );
  }

  async run(command: Record<string, unknown>): Promise<void> {
    this.status.textContent = `${String(command.op)}…`;
    this.status.className = "status";
    try {
      const result = (await this.send(command)) as Record<string, unknown> | null;
      let detail = "ok";
      if (result && typeof result.agent_id === "number") detail = `agent ${result.agent_id} added`;
      else if (result && result.fault && typeof result.fault === "object") {
        const f = result.fault as { sensor: string; kind: string; start_secs: number; end_secs: number; magnitude?: number };
        detail = `${f.kind} on ${f.sensor} from ${f.start_secs.toFixed(1)} s to ${f.end_secs.toFixed(1)} s` + (typeof f.magnitude === "number" ? `, magnitude ${f.magnitude}` : "");
      }
      this.status.textContent = `${String(command.op)}: ${detail}`;
      this.status.className = "status ok";
    } catch (e) {
      this.status.textContent = `${String(command.op)} failed: ${String(e instanceof Error ? e.message : e)}`;
      this.status.className = "status err";
    }
  }

  /** Serves one trajectory version to everyone, or the newest again. */
  private async pickVersion(version: string): Promise<void> {
    const body = version === "newest" ? { policy: "newest" } : { policy: "fixed", version };
    try {
      const r = await fetch(`${this.base}/api/v1/models/trajectory/routing`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...authHeaders() },
        body: JSON.stringify(body),
      });
      const text = await r.text();
      if (!r.ok) throw new Error(text || r.statusText);
      this.status.textContent = `trajectory model: ${version === "newest" ? "newest version" : "version " + version}`;
      this.status.className = "status ok";
    } catch (e) {
      this.status.textContent = `picking a version failed: ${String(e instanceof Error ? e.message : e)}`;
      this.status.className = "status err";
    }
  }

  /** Reflects the scene's state (running, sensors) in the controls. */
  showScene(s: SceneMsg): void {
    this.running = s.running;
    this.sceneT = s.t_secs;
    this.runButton.textContent = s.running ? "Stop" : "Start";
    // The speed in force (another operator may have changed it); one not listed is added.
    if (document.activeElement !== this.speedSelect) {
      const v = String(s.speed);
      if (![...this.speedSelect.options].some((o) => o.value === v)) this.speedSelect.append(new Option(`${v}×`, v));
      this.speedSelect.value = v;
    }
    for (const x of s.sensors) {
      const box = this.sensorBoxes.get(x.sensor);
      if (box && document.activeElement !== box) box.checked = x.enabled;
    }
  }

  showStats(s: StatsSnapshot): void {
    const m = s.models.find((x) => x.name === "trajectory");
    const versions = m ? m.versions.map(String) : [];
    const key = versions.join(",");
    if (key === this.versionsKey) return;
    this.versionsKey = key;
    const current = this.versionSelect.value;
    this.versionSelect.replaceChildren(...["newest", ...versions].map((v) => new Option(v === "newest" ? "newest" : `v${v}`, v)));
    this.versionSelect.value = ["newest", ...versions].includes(current) ? current : "newest";
  }
}
