/**
 * Stage `fetch-cifar10`: downloads the official CIFAR-10 binary archive (`cifar-10-binary.tar.gz`)
 * and checks its published MD5, writing it as the output `archive`. Its fingerprint is only its
 * params (url, md5) and code, so the harness fetches the 170 MB archive once and afterwards
 * restores it from the artifact store; prepare-data takes it as the dep `archive`. A wrong MD5 or
 * a truncated download fails the stage and leaves no output (src/data/cifar10.ts).
 */
import { join } from 'node:path'
import { downloadCifar10 } from '../../src/data/cifar10.ts'
import { redactUrls } from '../../src/harness/redact.ts'
import { defineStage } from '../../src/harness/stage-api.ts'

/** Params (schemas/stages/fetch-cifar10.params.schema.json). */
export interface FetchCifar10Params {
  url: string
  md5: string
}

export default defineStage<FetchCifar10Params, { url: string; md5: string; bytes: number }>(async (ctx) => {
  const { url, md5 } = ctx.params
  ctx.progress(0, `downloading ${redactUrls(url)}`)
  let last = 0
  const got = await downloadCifar10(url, join(ctx.outDir, 'archive'), {
    md5,
    onProgress: (received, total) => {
      if (total === undefined || received - last < total / 100) return
      last = received
      ctx.progress(received / total, `${(received / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`)
    },
  })
  ctx.progress(1, `MD5 ${got.md5} checked`)
  return { url: redactUrls(url), md5: got.md5, bytes: got.bytes }
})
