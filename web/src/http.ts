// The one way the page and its worker read JSON from the server: `null` when the server is
// unreachable, answers an error or has not answered within 8 s, never a throw (so a stuck
// request cannot hold the page's start or a poll forever).

const TIMEOUT_MS = 8000;

export async function getJson<T>(base: string, path: string, timeoutMs = TIMEOUT_MS): Promise<T | null> {
  try {
    const r = await fetch(base + path, { cache: "no-store", signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return null;
    return (await r.json()) as T;
  } catch {
    return null;
  }
}
