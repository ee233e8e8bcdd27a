// Text labels of the scene's objects.

import type { Track } from "./protocol";

/** Short names of the tracker's classes (0 vehicle, 1 pedestrian, 2 cyclist). */
const TRACK_CLASSES = ["veh", "ped", "cyc"];

/**
 * A track's label: its id and its class. The class is the tracker's vote over the track's
 * detections (and its speed), steadier than any one sweep's detection.
 */
export function trackLabel(t: Pick<Track, "id" | "class">): string {
  return `#${t.id} ${TRACK_CLASSES[t.class] ?? "oth"}`;
}
