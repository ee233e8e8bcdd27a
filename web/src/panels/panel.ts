// A dashboard panel: a titled card that draws only when it is on screen, expanded and has new
// data, and says honestly when it has none yet.

import type { Frame } from "../protocol";

export abstract class Panel {
  readonly el: HTMLElement;
  readonly body: HTMLElement;
  private readonly empty: HTMLElement;
  /** Set by the page's IntersectionObserver (which reports every panel once at the start). */
  onScreen = false;
  collapsed = false;
  dirty = false;
  hasData = false;
  draws = 0;

  constructor(
    readonly id: string,
    title: string,
    emptyText: string,
  ) {
    this.el = document.createElement("section");
    this.el.className = "panel";
    this.el.id = `panel-${id}`;
    this.el.setAttribute("aria-label", title);
    const head = document.createElement("header");
    const h = document.createElement("h2");
    h.textContent = title;
    const toggle = document.createElement("button");
    toggle.className = "collapse";
    toggle.textContent = "–";
    toggle.title = "hide / show (a hidden panel stops drawing)";
    toggle.setAttribute("aria-label", `Hide ${title}`);
    toggle.setAttribute("aria-expanded", "true");
    toggle.addEventListener("click", () => {
      this.collapsed = !this.collapsed;
      this.el.classList.toggle("collapsed", this.collapsed);
      toggle.textContent = this.collapsed ? "+" : "–";
      toggle.setAttribute("aria-label", `${this.collapsed ? "Show" : "Hide"} ${title}`);
      toggle.setAttribute("aria-expanded", String(!this.collapsed));
      this.dirty = true;
    });
    head.append(h, toggle);
    this.body = document.createElement("div");
    this.body.className = "body";
    this.empty = document.createElement("div");
    this.empty.className = "empty";
    this.empty.textContent = emptyText;
    this.el.append(head, this.empty, this.body);
  }

  get visible(): boolean {
    return this.onScreen && !this.collapsed && document.visibilityState !== "hidden";
  }

  /** Marks that data arrived: hides the "no data yet" notice. */
  protected gotData(): void {
    if (!this.hasData) {
      this.hasData = true;
      this.empty.hidden = true;
      this.el.classList.add("live");
    }
    this.dirty = true;
  }

  /** Replaces the "no data yet" text (for example: why there is none). */
  protected setEmptyText(text: string): void {
    this.empty.textContent = text;
  }

  /** Takes what it needs from a batch of updates. */
  abstract accept(frame: Partial<Frame>): void;

  /** Draws the latest data. */
  protected abstract render(): void;

  /** Called once per animation frame. */
  draw(): void {
    if (!this.dirty || !this.visible || !this.hasData) return;
    this.dirty = false;
    this.draws++;
    this.render();
  }

  resize(): void {
    this.dirty = true;
  }
}
