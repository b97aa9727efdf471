/**
 * The request-smuggling corpus (test/fixtures/smuggling, 400+ cases in 9 classes) against the real cluster,
 * in forward and reverse mode: 0 desyncs, 0 hangs, 0 crashes, and every error answer closes its connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Cuttle, startCuttle } from '../helpers/cuttle.js';
import { loadCorpus, runCorpus, type SmugglingOrigin, startEchoOrigin } from '../helpers/smuggling.js';

const corpus = loadCorpus();
let origin: SmugglingOrigin;
before(async () => {
  origin = await startEchoOrigin();
});
after(() => origin.close());

describe('request smuggling corpus', () => {
  it('holds at least 300 cases in every class the issue names', () => {
    assert.ok(corpus.length >= 300, `${corpus.length} cases`);
    const classes = new Set(corpus.map((c) => c.class));
    for (const cls of [
      'CL.TE',
      'TE.CL',
      'TE obfuscation',
      'Duplicate CL',
      'obs-fold',
      'Bare CR/LF',
      'NUL/CTL',
      'Bad chunk',
      'Request line',
    ])
      assert.ok(classes.has(cls), cls);
    assert.equal(new Set(corpus.map((c) => c.id)).size, corpus.length, 'ids are unique');
  });

  for (const mode of ['forward', 'reverse'] as const) {
    it(`${mode} mode: no desync, no hang, no crash; errors close the connection`, async () => {
      const cuttle: Cuttle = await startCuttle({
        workers: 2,
        logLevel: 'warn',
        args: mode === 'reverse' ? ['--origin', origin.url] : [],
      });
      try {
        const pids = cuttle.workerPids();
        const report = await runCorpus(corpus, cuttle.port, origin, { reverse: mode === 'reverse' });
        assert.deepEqual(report.failures, []);
        assert.equal(report.results.length, corpus.length);
        assert.equal(report.desyncs + report.hangs + report.openAfterError, 0);
        const rejected = report.results.filter((r) => r.outcome === 'rejected').length;
        assert.ok(rejected >= corpus.filter((c) => c.expect === 'reject').length, `${rejected} rejected`);
        assert.deepEqual(
          cuttle.logs().filter((l) => l.msg === 'worker died'),
          [],
          'no worker crashed',
        );
        assert.deepEqual(cuttle.workerPids().sort(), pids.sort());
      } finally {
        await cuttle.stop();
      }
    });
  }
});
