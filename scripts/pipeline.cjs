/**
 * `npm run pipeline -- ...`: first the no-op replay (scripts/noop-replay.cjs), then, unless it
 * replayed, the CLI (scripts/pipeline.mjs). CommonJS, so that a replay never starts node's ES
 * module loader: a no-op rerun is mostly node's own start-up, and an ES module entry adds ~7 ms of
 * CPU to it. `node scripts/pipeline.mjs` is the same CLI (it tries the replay itself when run
 * directly), only slower to replay.
 */
'use strict'
if (!require('./noop-replay.cjs').tryReplay()) import('./pipeline.mjs')
