// The timeline bar: pause this page's view (the scene runs on for everyone else), scrub the last
// five minutes, and return to live. The worker keeps the history; this only asks it for a time.

function formatSpan(secs: number): string {
  const s = Math.max(0, Math.round(secs));
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s` : `${s} s`;
}

/** The bar's text for a view: live, or how far behind live the viewed time is. */
export function describeView(oldest: number, newest: number, viewing: number | null, bytes: number): string {
  const kept = Number.isFinite(newest - oldest) ? formatSpan(newest - oldest) : "nothing yet";
  const mb = (bytes / 1e6).toFixed(1);
  if (viewing === null) return `live · ${kept} kept to scrub back (${mb} MB)`;
  return `paused at scene ${viewing.toFixed(1)} s · ${formatSpan(newest - viewing)} behind live`;
}

export class TimelineBar {
  readonly el: HTMLElement;
  private readonly button: HTMLButtonElement;
  private readonly range: HTMLInputElement;
  private readonly state: HTMLOutputElement;
  private oldest = NaN;
  private newest = NaN;
  /** Bytes the worker's timeline holds. */
  bytes = 0;
  /** The scene time viewed (null: live). */
  viewing: number | null = null;
  /** Asked to look at a time (null: live); the page forwards it to the worker. */
  onView: (t: number | null) => void = () => {};

  constructor() {
    this.el = document.createElement("section");
    this.el.id = "timeline";
    this.el.className = "timeline";
    this.el.setAttribute("aria-label", "timeline");
    this.button = document.createElement("button");
    this.button.id = "tl-pause";
    this.button.textContent = "Pause view";
    this.button.title = "freeze this page's view; the scene runs on for everyone else";
    this.button.addEventListener("click", () => this.view(this.viewing === null ? this.newest : null));
    this.range = document.createElement("input");
    this.range.type = "range";
    this.range.id = "tl-scrub";
    this.range.step = "0.1";
    this.range.min = "0";
    this.range.max = "0";
    this.range.disabled = true;
    const label = document.createElement("label");
    label.className = "tl-range";
    this.range.addEventListener("input", () => this.view(Number(this.range.value)));
    this.state = document.createElement("output");
    this.state.id = "tl-state";
    this.state.setAttribute("aria-live", "polite");
    this.state.textContent = "live";
    label.append("scene time ", this.range);
    this.el.append(this.button, label, this.state);
  }

  private view(t: number | null): void {
    if (t !== null && !Number.isFinite(t)) return;
    this.viewing = t;
    this.onView(t);
    this.render();
  }

  /** The worker's word on what the timeline spans and what this page views. */
  show(oldest: number, newest: number, viewing: number | null, bytes: number): void {
    this.oldest = oldest;
    this.newest = newest;
    this.bytes = bytes;
    this.viewing = viewing;
    this.render();
  }

  private render(): void {
    const live = this.viewing === null;
    this.button.textContent = live ? "Pause view" : "Back to live";
    this.button.setAttribute("aria-pressed", String(!live));
    document.body.classList.toggle("viewing-past", !live);
    const ok = Number.isFinite(this.oldest) && Number.isFinite(this.newest);
    this.range.disabled = !ok;
    if (ok) {
      this.range.min = this.oldest.toFixed(1);
      this.range.max = this.newest.toFixed(1);
      // While live the handle rides the newest time; while scrubbing it stays where it was put.
      if (live || document.activeElement !== this.range) this.range.value = String(this.viewing ?? this.newest);
      this.range.setAttribute("aria-valuetext", `scene ${Number(this.range.value).toFixed(1)} s`);
    }
    this.state.textContent = describeView(this.oldest, this.newest, this.viewing, this.bytes);
  }
}
