// Operator controls for the model lifecycle: for the chosen model, the routing policy in force
// (newest, one fixed version, a weighted split, a shadow, a canary with its step and its
// decisions and their evidence), changing it (each change confirmed first, the server's refusal
// shown), promoting or rolling back a canary now, loading and unloading the model, and starting
// a training round and following it.

import { authHeaders } from "./auth";
import { drawCurve } from "./curve";
import { el } from "./dom";
import { getJson } from "./http";

interface Decision {
  model: string;
  action: string;
  detail: string;
  evidence: unknown;
  unix_secs: number;
}
export interface Routing {
  model: string;
  policy: "newest" | "fixed" | "split" | "shadow" | "canary";
  summary: string;
  version?: string;
  shares?: Record<string, number>;
  primary?: string | null;
  candidate?: string;
  incumbent?: string;
  status?: string;
  step?: number;
  share?: number;
  settings?: { steps: number[]; dwell_secs: number };
  judged_on?: string;
  step_elapsed_secs?: number;
  decisions?: Decision[];
}
interface IndexEntry {
  name: string;
  version: string;
  state: string;
  reason: string;
}
interface Round {
  id: number;
  status: string;
  base_version: number;
  windows: number;
  epochs: number;
  new_version: number | null;
  best_val_ade_m: number | null;
  base_val_ade_m?: number | null;
  seconds: number | null;
  canary: boolean;
  error: string | null;
  /** The epochs finished so far. */
  progress?: { epoch: number; train_loss: number; val_ade_m: number }[];
}
interface Learning {
  model: string;
  running: boolean;
  observed_windows: number;
  min_windows: number;
  rounds: Round[];
}

const POLICIES = ["newest", "fixed", "split", "shadow", "canary"] as const;

function labelled(text: string, input: HTMLElement): HTMLLabelElement {
  return el("label", { className: "field" }, `${text} `, input);
}

function versionSelect(id: string, versions: string[], extra?: string): HTMLSelectElement {
  const s = el("select", { id });
  if (extra) s.append(new Option(extra, ""));
  for (const v of versions) s.append(new Option(`v${v}`, v));
  return s;
}

/** The request body of a routing change, from the form's values. */
export function policyBody(policy: string, values: Record<string, string>, weights: Record<string, number>): Record<string, unknown> {
  switch (policy) {
    case "fixed":
      return { policy, version: values.version };
    case "split":
      return { policy, weights };
    case "shadow":
      return values.primary ? { policy, primary: values.primary, candidate: values.candidate } : { policy, candidate: values.candidate };
    case "canary":
      return values.incumbent ? { policy, incumbent: values.incumbent, candidate: values.candidate } : { policy, candidate: values.candidate };
    default:
      return { policy: "newest" };
  }
}

/** One line per decision, newest first: when, what, and the evidence it went on. */
export function describeDecision(d: Decision): string {
  const when = new Date(d.unix_secs * 1000).toLocaleTimeString();
  const evidence = JSON.stringify(d.evidence);
  return `${when} ${d.action}: ${d.detail.length > 160 ? d.detail.slice(0, 157) + "…" : d.detail} — evidence ${evidence.length > 200 ? evidence.slice(0, 197) + "…" : evidence}`;
}

export class LifecycleControls {
  readonly el: HTMLDetailsElement;
  private readonly model = el("select", { id: "lc-model" });
  private readonly state = el("span", { id: "lc-state", className: "lc-state" });
  private readonly policy = el("select", { id: "lc-policy" });
  private readonly params = el("span", { id: "lc-params", className: "lc-params" });
  private readonly confirmBox = el("span", { id: "lc-confirm", className: "lc-confirm", hidden: true });
  private readonly canary = el("div", { id: "lc-canary", className: "lc-canary", hidden: true });
  private readonly decisions = el("ol", { id: "lc-decisions", className: "lc-decisions" });
  private readonly training = el("div", { id: "lc-training", className: "lc-training", hidden: true });
  private readonly rounds = el("ol", { id: "lc-rounds", className: "lc-rounds" });
  private readonly roundProgress = el("progress", { id: "lc-round-progress", max: 1, value: 0 });
  private readonly roundText = el("span", { id: "lc-round-text", className: "muted" });
  private readonly lossCurve = el("canvas", { id: "lc-loss", className: "lc-curve" });
  private readonly adeCurve = el("canvas", { id: "lc-val-ade", className: "lc-curve" });
  private readonly roundBox = el(
    "div",
    { id: "lc-round", className: "lc-round", hidden: true },
    this.roundProgress,
    this.roundText,
    el("figure", {}, this.lossCurve, el("figcaption", {}, "training loss per epoch")),
    el("figure", {}, this.adeCurve, el("figcaption", {}, "validation ADE per epoch (m)")),
  );
  private readonly status = el("span", { id: "lc-status", className: "status" });
  private versions: string[] = [];
  private current: Routing | null = null;
  private pending: (() => Promise<void>) | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** Reads and changes run one at a time (a read never interleaves with an unload). */
  private queue: Promise<void> = Promise.resolve();
  /** Whether the server is reachable (the stream is open): no polling while it is not. */
  private online = true;

  constructor(private readonly base: string) {
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");
    for (const p of POLICIES) this.policy.append(new Option(p, p));
    this.model.addEventListener("change", () => void this.serial(() => this.refresh(true)));
    this.policy.addEventListener("change", () => this.buildParams());
    const apply = el("button", { id: "lc-apply", textContent: "Apply…" });
    apply.addEventListener("click", () => this.askApply());
    const yes = el("button", { id: "lc-confirm-yes", textContent: "Confirm" });
    const no = el("button", { id: "lc-confirm-no", textContent: "Cancel" });
    yes.addEventListener("click", () => void this.serial(() => this.confirm()));
    no.addEventListener("click", () => this.cancel());
    this.confirmBox.append(el("span", { className: "lc-question" }), yes, no);
    const load = el("button", { id: "lc-load", textContent: "Load" });
    const unload = el("button", { id: "lc-unload", textContent: "Unload…" });
    load.addEventListener("click", () => void this.serial(() => this.repository("load")));
    unload.addEventListener("click", () =>
      this.ask(`Unload ${this.model.value}? Requests for it will fail until it is loaded again.`, () => this.repository("unload")),
    );
    const epochs = el("input", { id: "lc-epochs", type: "number", min: "1", max: "200", value: "20" });
    const withCanary = el("input", { id: "lc-train-canary", type: "checkbox", checked: true });
    const train = el("button", { id: "lc-train", textContent: "Start training round" });
    train.addEventListener("click", () => void this.serial(() => this.train(Number(epochs.value) || 20, withCanary.checked)));
    this.training.append(
      el("span", { className: "label" }, "continuous learning"),
      labelled("epochs", epochs),
      el("label", { className: "field" }, withCanary, " then canary the new version"),
      train,
      this.roundBox,
      this.rounds,
    );
    const summary = el("summary", { textContent: "Models and rollout" });
    this.el = el(
      "details",
      { id: "lifecycle", className: "lifecycle", open: false },
      summary,
      el(
        "div",
        { className: "lc-row" },
        labelled("model", this.model),
        this.state,
        load,
        unload,
      ),
      el("div", { className: "lc-row" }, labelled("policy", this.policy), this.params, apply, this.confirmBox),
      this.canary,
      el("div", { className: "lc-row" }, el("span", { className: "label" }, "decisions"), this.decisions),
      this.training,
      this.status,
    );
    this.el.addEventListener("toggle", () => this.follow());
  }

  /** Whether the model list has been read (on the first opening). */
  private begun = false;

  /** Follows the server while the section is open and the server reachable: reads at once,
   * then every 2 s. A closed section asks the server nothing. */
  private follow(): void {
    this.poll();
    if (!this.el.open || !this.online) return;
    if (this.begun) {
      void this.serial(() => this.refresh(false));
      return;
    }
    this.begun = true;
    void this.serial(async () => {
      await this.refreshModels();
      await this.refresh(true);
    });
  }

  private poll(): void {
    clearInterval(this.timer);
    if (this.el.open)
      this.timer = setInterval(() => {
        if (this.online) void this.serial(() => this.refresh(false));
      }, 2000);
  }

  /** The stream's state: polling stops while the server is away and resumes when it is back. */
  setOnline(online: boolean): void {
    const back = online && !this.online;
    this.online = online;
    if (back) this.follow();
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(fn, fn);
    return this.queue;
  }

  private async refreshModels(): Promise<void> {
    const index = await this.post<IndexEntry[]>("/v2/repository/index", {});
    if (!Array.isArray(index)) return;
    const names = [...new Set(index.map((e) => e.name))].sort();
    const keep = this.model.value || (names.includes("trajectory") ? "trajectory" : names[0]);
    this.model.replaceChildren(...names.map((n) => new Option(n, n, false, n === keep)));
    this.model.value = keep ?? "";
  }

  /** Reads the model's versions, routing and (for the learned model) learning state. */
  async refresh(rebuild: boolean): Promise<void> {
    const name = this.model.value;
    if (!name) return;
    const models = await getJson<{ models: { name: string; versions: number[] }[] }>(this.base, "/api/v1/models");
    const entry = models?.models.find((m) => m.name === name);
    const versions = entry ? entry.versions.map(String) : [];
    const routing = entry ? await getJson<Routing>(this.base, `/api/v1/models/${encodeURIComponent(name)}/routing`) : null;
    if (this.model.value !== name) return; // the operator picked another model meanwhile
    const changed = rebuild || versions.join(",") !== this.versions.join(",");
    this.versions = versions;
    this.current = routing;
    this.state.textContent = entry
      ? `loaded v${versions.join(", v")} · ${routing?.summary ?? "routing unknown"}`
      : "not loaded";
    this.state.dataset.policy = routing?.policy ?? "";
    if (changed) {
      if (routing) this.policy.value = routing.policy;
      this.buildParams();
    }
    this.showCanary(routing);
    const decisions = (routing?.decisions ?? []).slice(-6).reverse();
    this.decisions.replaceChildren(...decisions.map((d) => el("li", { textContent: describeDecision(d) })));
    if (decisions.length === 0) this.decisions.append(el("li", { className: "muted", textContent: "none yet" }));
    const learning = name === "trajectory" ? await getJson<Learning>(this.base, "/api/v1/learning") : null;
    this.training.hidden = !learning;
    if (learning) this.showLearning(learning);
  }

  private buildParams(): void {
    const p = this.policy.value;
    const v = this.versions;
    const r = this.current;
    const kids: HTMLElement[] = [];
    if (p === "fixed") {
      const s = versionSelect("lc-version", v);
      if (r?.version) s.value = r.version;
      kids.push(labelled("version", s));
    } else if (p === "split") {
      for (const ver of v) {
        const share = r?.shares?.[ver];
        const value = String(Math.round((share ?? 1 / Math.max(1, v.length)) * 100));
        const out = el("output", { id: `lc-weight-${ver}-value`, textContent: `${value} %` });
        const range = el("input", { id: `lc-weight-${ver}`, type: "range", min: "0", max: "100", step: "1", value });
        range.dataset.version = ver;
        range.addEventListener("input", () => (out.textContent = `${range.value} %`));
        kids.push(el("label", { className: "field" }, `v${ver} weight `, range, out));
      }
    } else if (p === "shadow") {
      const primary = versionSelect("lc-primary", v, "newest");
      const candidate = versionSelect("lc-candidate", v);
      if (r?.candidate) candidate.value = r.candidate;
      if (r?.primary) primary.value = r.primary;
      kids.push(labelled("answers", primary), labelled("shadow", candidate));
    } else if (p === "canary") {
      const incumbent = versionSelect("lc-incumbent", v, "serving now");
      const candidate = versionSelect("lc-candidate", v);
      candidate.value = r?.candidate ?? v[v.length - 1] ?? "";
      if (r?.incumbent) incumbent.value = r.incumbent;
      kids.push(labelled("against", incumbent), labelled("candidate", candidate));
    }
    this.params.replaceChildren(...kids);
  }

  private formBody(): Record<string, unknown> {
    const value = (id: string): string => (this.params.querySelector<HTMLSelectElement>(`#${id}`)?.value ?? "");
    const weights: Record<string, number> = {};
    for (const r of this.params.querySelectorAll<HTMLInputElement>("input[type=range]")) weights[r.dataset.version ?? ""] = Number(r.value);
    return policyBody(
      this.policy.value,
      { version: value("lc-version"), primary: value("lc-primary"), candidate: value("lc-candidate"), incumbent: value("lc-incumbent") },
      weights,
    );
  }

  private askApply(): void {
    const body = this.formBody();
    this.ask(`Route ${this.model.value}: ${JSON.stringify(body)}? This changes what its users get.`, () => this.setRouting(body));
  }

  private showCanary(r: Routing | null): void {
    this.canary.hidden = r?.policy !== "canary";
    if (!r || r.policy !== "canary") return;
    const steps = r.settings?.steps ?? [];
    const promote = el("button", { id: "lc-promote", textContent: "Promote now…" });
    const rollback = el("button", { id: "lc-rollback", textContent: "Roll back now…" });
    const running = r.status === "running";
    promote.disabled = !running;
    rollback.disabled = !running;
    promote.addEventListener("click", () =>
      this.ask(`Promote v${r.candidate} to everyone now?`, () => this.setRouting({ policy: "fixed", version: r.candidate })),
    );
    rollback.addEventListener("click", () =>
      this.ask(`Roll back to v${r.incumbent} for everyone now?`, () => this.setRouting({ policy: "fixed", version: r.incumbent })),
    );
    const progress = el("progress", { max: Math.max(1, steps.length), value: (r.step ?? 0) + 1 });
    progress.setAttribute("aria-label", "canary step");
    this.canary.replaceChildren(
      el("span", { className: "label" }, "canary"),
      el(
        "span",
        { id: "lc-canary-state" },
        `v${r.candidate} against v${r.incumbent}: ${r.status}, step ${(r.step ?? 0) + 1} of ${steps.length} at ${Math.round((r.share ?? 0) * 100)} % for ${(r.step_elapsed_secs ?? 0).toFixed(0)} s of ${r.settings?.dwell_secs ?? "?"} s; judged on ${r.judged_on ?? "?"}`,
      ),
      progress,
      promote,
      rollback,
    );
  }

  private showLearning(l: Learning): void {
    const rows = l.rounds.slice(-5).reverse();
    this.showRound(rows[0]);
    const line = (x: Round): string => {
      const parts = [`round ${x.id}: ${x.status}`, `${x.windows} windows`, `${x.epochs} epochs from v${x.base_version}`];
      if (x.best_val_ade_m !== null)
        parts.push(
          `ADE on the latest windows ${x.best_val_ade_m.toFixed(3)} m` +
            (x.base_val_ade_m != null ? ` (base ${x.base_val_ade_m.toFixed(3)} m)` : ""),
        );
      if (x.new_version !== null) parts.push(`produced v${x.new_version}${x.canary ? " (canaried)" : ""}`);
      if (x.seconds !== null) parts.push(`${x.seconds.toFixed(1)} s`);
      if (x.error) parts.push(`error: ${x.error}`);
      return parts.join(" · ");
    };
    this.rounds.replaceChildren(
      el("li", { className: "muted", textContent: `${l.running ? "a round is running" : "idle"} · ${l.observed_windows} of ${l.min_windows} windows observed for a round` }),
      ...rows.map((x) => el("li", { textContent: line(x) })),
    );
  }

  /** The newest round: its progress through its epochs and its loss curves, drawn as they come. */
  private showRound(r: Round | undefined): void {
    this.roundBox.hidden = !r;
    if (!r) return;
    const done = r.progress ?? [];
    this.roundProgress.max = Math.max(1, r.epochs);
    this.roundProgress.value = r.status === "running" ? done.length : r.epochs;
    this.roundProgress.setAttribute("aria-label", `round ${r.id} epochs`);
    const last = done[done.length - 1];
    this.roundText.textContent =
      `round ${r.id}: ${r.status === "running" ? `epoch ${done.length} of ${r.epochs}` : r.status}` +
      (last ? ` · loss ${last.train_loss.toFixed(4)} · val ADE ${last.val_ade_m.toFixed(3)} m` : "") +
      (r.new_version !== null ? ` · produced v${r.new_version}` : "");
    drawCurve(this.lossCurve, done.map((e) => e.train_loss), "#ffd166", 4);
    drawCurve(this.adeCurve, done.map((e) => e.val_ade_m), "#06d6a0", 3);
  }

  private ask(question: string, action: () => Promise<void>): void {
    this.pending = action;
    const q = this.confirmBox.querySelector(".lc-question");
    if (q) q.textContent = question;
    this.confirmBox.hidden = false;
    this.confirmBox.querySelector<HTMLButtonElement>("#lc-confirm-yes")?.focus();
  }

  private cancel(): void {
    this.pending = null;
    this.confirmBox.hidden = true;
  }

  private async confirm(): Promise<void> {
    const action = this.pending;
    this.cancel();
    if (action) await action();
  }

  private say(text: string, ok: boolean): void {
    this.status.textContent = text;
    this.status.className = ok ? "status ok" : "status err";
  }

  private async call(method: string, path: string, body: unknown): Promise<unknown> {
    const r = await fetch(this.base + path, {
      method,
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) {
      let message = text || r.statusText;
      try {
        const j = JSON.parse(text) as { error?: string };
        if (typeof j.error === "string") message = j.error;
      } catch {
        // not JSON: the text as it came
      }
      throw new Error(`${r.status}: ${message}`);
    }
    return text ? (JSON.parse(text) as unknown) : null;
  }

  private async post<T>(path: string, body: unknown): Promise<T | null> {
    try {
      return (await this.call("POST", path, body)) as T;
    } catch {
      return null;
    }
  }

  // Each change reads the server back (rebuilding the controls) before saying how it went, so
  // the outcome is shown once the controls show it too and an edit made after it is kept.
  private async setRouting(body: Record<string, unknown>): Promise<void> {
    const model = this.model.value;
    let outcome: [string, boolean];
    try {
      const r = (await this.call("PUT", `/api/v1/models/${encodeURIComponent(model)}/routing`, body)) as Routing;
      outcome = [`${model}: ${r.summary}`, true];
    } catch (e) {
      outcome = [`${model}: the server refused: ${e instanceof Error ? e.message : String(e)}`, false];
    }
    await this.refresh(true);
    this.say(...outcome);
  }

  private async repository(op: "load" | "unload"): Promise<void> {
    const model = this.model.value;
    let outcome: [string, boolean];
    try {
      await this.call("POST", `/v2/repository/models/${encodeURIComponent(model)}/${op}`, {});
      outcome = [`${model}: ${op}ed`, true];
    } catch (e) {
      outcome = [`${model}: ${op} refused: ${e instanceof Error ? e.message : String(e)}`, false];
    }
    await this.refresh(true);
    this.say(...outcome);
  }

  private async train(epochs: number, canary: boolean): Promise<void> {
    try {
      const r = (await this.call("POST", "/api/v1/models/trajectory/train", { epochs, canary })) as { id?: number };
      this.say(`training round ${r?.id ?? ""} started`, true);
    } catch (e) {
      this.say(`training refused: ${e instanceof Error ? e.message : String(e)}`, false);
    }
    await this.refresh(false);
  }
}
