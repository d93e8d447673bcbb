// The list of rooms, updated every second from the event stream.

import type { Snapshot } from "./types";
import { navigate } from "./nav";

export function RoomList({ snap }: { snap: Snapshot | null }) {
  if (!snap) return <main><p>Connecting…</p></main>;
  return (
    <main>
      <h1>Rooms</h1>
      {snap.rooms.length === 0 ? (
        <p>No rooms. Create one with the API (POST /v1/rooms).</p>
      ) : (
        <table class="rooms">
          <thead>
            <tr>
              <th scope="col">Room</th>
              <th scope="col">State</th>
              <th scope="col">Layout</th>
              <th scope="col">Seats</th>
              <th scope="col">Viewers (WHEP)</th>
              <th scope="col">Outputs</th>
              <th scope="col">Mix fps</th>
              <th scope="col">Top rung</th>
              <th scope="col">CPU</th>
            </tr>
          </thead>
          <tbody>
            {snap.rooms.map((r) => (
              <tr key={r.id} data-room={r.id}>
                <th scope="row">
                  <a
                    href={`/console/rooms/${r.id}`}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(r.id);
                    }}
                  >
                    {r.id}
                  </a>
                </th>
                <td>
                  <span class={`badge ${r.state}`}>{r.state}</span>
                  {r.reason && <span class="reason"> {r.reason}</span>}
                </td>
                <td class="layout">{r.layout.name}</td>
                <td>{r.seats.length}</td>
                <td>{r.stats.whep_viewers}</td>
                <td>
                  {r.playback.hls && <span class="badge live">LL-HLS</span>}
                  {r.outputs.map((o) => (
                    <span key={o.id} class={`badge ${o.state}`} title={o.reason ?? ""}>
                      {o.id}: {o.state}
                    </span>
                  ))}
                </td>
                <td>{r.stats.mix_fps.toFixed(1)}</td>
                <td>
                  {r.stats.rungs[0] ? `${r.stats.rungs[0].name} ${r.stats.rungs[0].bitrate_kbps.toFixed(0)} kbit/s` : "–"}
                </td>
                <td class="cpu">
                  {r.stats.cpu_percent === null ? "…" : `${r.stats.cpu_percent.toFixed(0)} %`}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
