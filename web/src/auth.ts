// The server's API token, when it has one: given once in the page's address as `#token=…`,
// kept for this tab's session and taken out of the address bar (so it is not shared with the
// link or left in the history).

const KEY = "waypoint-token";

export function takeToken(): string | null {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

/** Headers for a call that needs the token. */
export function authHeaders(): Record<string, string> {
  const t = sessionStorage.getItem(KEY);
  return t ? { authorization: `Bearer ${t}` } : {};
}
