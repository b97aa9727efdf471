/**
 * The bench's chart: for each scenario, one bar per system for requests/s (left) and p99 latency (right),
 * so cuttle and its peers can be compared at a glance; for coalesce, whose figure is how many of its
 * concurrent requests reached the origin, the left bar counts those. Plain SVG, no library.
 */
import type { Run } from './run.js';

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
const COLOURS = ['#3b7dd8', '#d8843b', '#3bb273', '#b23b8f', '#7a7a7a'];

export function chartSvg(medians: Run[], systems: string[], title: string): string {
  const scenarios = [...new Set(medians.map((m) => m.scenario))];
  const find = (sys: string, sc: string) => medians.find((m) => m.system === sys && m.scenario === sc);
  const bar = 14;
  const group = systems.length * bar + 14;
  const legend = 24;
  const top = 60 + legend;
  const h = top + scenarios.length * group + 10;
  let out = `<svg xmlns="http://www.w3.org/2000/svg" width="960" height="${h}" font-family="sans-serif" font-size="11">`;
  out += `<rect width="960" height="${h}" fill="#fff"/>`;
  out += `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`;
  systems.forEach((s, i) => {
    out += `<rect x="${10 + i * 110}" y="34" width="12" height="12" fill="${COLOURS[i % COLOURS.length]}"/>`;
    out += `<text x="${26 + i * 110}" y="44">${esc(s)}</text>`;
  });
  out += `<text x="130" y="${top - 8}" font-weight="bold">requests/s (longer is better)</text>`;
  out += `<text x="570" y="${top - 8}" font-weight="bold">p99 latency, ms (shorter is better)</text>`;
  scenarios.forEach((sc, gi) => {
    const y0 = top + gi * group;
    const inGroup = systems.map((s) => find(s, sc));
    // coalesce is judged by origin fetches (fewer is better), not by its rate.
    const figure = (m: Run) => (m.reached !== undefined ? m.reached : m.requestsPerSec);
    const maxRps = Math.max(1, ...inGroup.map((m) => (m ? figure(m) : 0)));
    const maxP99 = Math.max(1, ...inGroup.map((m) => m?.p99 ?? 0));
    const mid = y0 + (systems.length * bar) / 2 + 4;
    out += `<text x="10" y="${mid}">${esc(sc)}</text>`;
    if (inGroup.some((m) => m?.reached !== undefined))
      out += `<text x="10" y="${mid + 13}" fill="#555">origin fetches</text>`;
    systems.forEach((s, i) => {
      const m = find(s, sc);
      const y = y0 + i * bar;
      const fill = COLOURS[i % COLOURS.length];
      if (!m) {
        out += `<text x="130" y="${y + 11}" fill="#999">n/a</text>`;
        return;
      }
      // Each scenario has its own scale: sizes differ by orders of magnitude, the comparison is within one.
      const w1 = Math.round((figure(m) / maxRps) * 330);
      out += `<rect x="130" y="${y}" width="${w1}" height="${bar - 2}" fill="${fill}"/>`;
      out += `<text x="${134 + w1}" y="${y + 10}">${Math.round(figure(m))}</text>`;
      if (m.p99 > 0) {
        const w2 = Math.round((m.p99 / maxP99) * 300);
        out += `<rect x="570" y="${y}" width="${w2}" height="${bar - 2}" fill="${fill}" opacity="0.7"/>`;
        out += `<text x="${574 + w2}" y="${y + 10}">${m.p99.toFixed(1)}</text>`;
      }
    });
  });
  return `${out}</svg>\n`;
}
