// The page's theme colours (style.css: dark, or light when the system asks for it), for what is
// drawn by script rather than styled.

export function themeColour(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}
