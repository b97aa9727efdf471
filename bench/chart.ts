/** A small SVG: req/s and p99 per scenario, as horizontal bars, readable at a glance. */
import type { Figures } from './run.js';

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

export function chartSvg(figures: Figures[], title: string): string {
  const rows = figures.filter((f) => f.requestsPerSec > 0);
  const maxRps = Math.max(1, ...rows.map((f) => f.requestsPerSec));
  const maxP99 = Math.max(1, ...rows.map((f) => f.p99));
  const h = 40 + rows.length * 34;
  let out = `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${h}" font-family="sans-serif" font-size="12">`;
  out += `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`;
  out += `<text x="140" y="36">requests/s</text><text x="560" y="36">p99 latency (ms)</text>`;
  rows.forEach((f, i) => {
    const y = 44 + i * 34;
    const w1 = Math.round((f.requestsPerSec / maxRps) * 380);
    const w2 = Math.round((f.p99 / maxP99) * 280);
    out += `<text x="10" y="${y + 14}">${esc(f.scenario)}</text>`;
    out += `<rect x="140" y="${y}" width="${w1}" height="20" fill="#3b7dd8"/><text x="${144 + w1}" y="${y + 14}">${Math.round(f.requestsPerSec)}</text>`;
    out += `<rect x="560" y="${y}" width="${w2}" height="20" fill="#d8843b"/><text x="${564 + w2}" y="${y + 14}">${f.p99.toFixed(1)}</text>`;
  });
  return `${out}</svg>\n`;
}
