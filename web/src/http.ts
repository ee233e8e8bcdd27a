// The one way the page and its worker read JSON from the server: `null` when the server is
// unreachable or answers an error, never a throw.

export async function getJson<T>(base: string, path: string): Promise<T | null> {
  try {
    const r = await fetch(base + path, { cache: "no-store" });
    if (!r.ok) return null;
    return (await r.json()) as T;
  } catch {
    return null;
  }
}
