/**
 * Device classes for `--estimate`: a sustained throughput (what tfjs reaches on the device, not its
 * peak) and a price per device-hour. Where the throughput is measured it says so; everything else
 * is an assumption, and says so in the printed estimate.
 *
 * Throughput:
 * - cpu-core: 8.5 GFLOP/s per core, MEASURED: the reference CNN's gradient / HVP on one tfjs wasm
 *   thread (0.25 s / 1.17 s / 3.66 s for forward / gradient / HVP on its benchmark batch; README,
 *   "What the paper profile costs"). A stage with `resources.cpu: c` is counted at c cores.
 * - GPUs: ASSUMED 25.6% of the device's fp32 peak (NVIDIA data sheets: T4 8.1, A10G 31.2, L4 30.3,
 *   A100 19.5 (no TF32), H100 SXM 67 TFLOP/s), the fraction that makes an A100 the README's
 *   5 TFLOP/s through tfjs-node-gpu. No GPU run has been measured yet.
 *
 * Prices: AWS EC2 On-Demand, Linux, us-east-1, per device-hour = instance price / devices in it, as
 * listed on https://aws.amazon.com/ec2/pricing/on-demand/ in 2024 (recalled, not re-checked: the
 * machine this table was last edited on had no internet access; AWS has since cut some P4/P5
 * prices, so those are likely high). Every estimate prints this. Replace them with `estimate.prices`
 * in pipeline.yaml (per device class) or `--price USD` (Spot, Savings Plans, another region).
 */

export interface DeviceClass {
  id: string
  label: string
  /** Sustained FLOP/s of one device. */
  flopsPerSecond: number
  throughputSource: 'measured' | 'assumption'
  throughputNote: string
  /** USD per device-hour. */
  usdPerHour: number
  priceNote: string
  /** Where the price comes from, and as of when. */
  priceSource: string
  priceAsOf: string
  gpu: boolean
}

const GPU_FRACTION = 5e12 / 19.5e12
const PRICE_SOURCE = 'AWS EC2 On-Demand, Linux, us-east-1 list price'
const PRICE_AS_OF = '2024 (not re-checked since)'

export const DEVICES: readonly DeviceClass[] = [
  {
    id: 'cpu-core',
    label: 'one CPU core (tfjs wasm)',
    flopsPerSecond: 8.5e9,
    throughputSource: 'measured',
    throughputNote: 'reference CNN gradient/HVP on one wasm thread',
    usdPerHour: 0.0893 / 2,
    priceNote: 'c7i.large $0.0893/h for 2 vCPU',
    priceSource: PRICE_SOURCE,
    priceAsOf: PRICE_AS_OF,
    gpu: false,
  },
  gpuClass('t4', 'NVIDIA T4', 8.1e12, 0.526, 'g4dn.xlarge $0.526/h, 1 GPU'),
  gpuClass('a10g', 'NVIDIA A10G', 31.2e12, 1.006, 'g5.xlarge $1.006/h, 1 GPU'),
  gpuClass('l4', 'NVIDIA L4', 30.3e12, 0.8048, 'g6.xlarge $0.8048/h, 1 GPU'),
  gpuClass('a100', 'NVIDIA A100 40GB', 19.5e12, 32.7726 / 8, 'p4d.24xlarge $32.7726/h, 8 GPUs'),
  gpuClass('h100', 'NVIDIA H100 80GB', 67e12, 98.32 / 8, 'p5.48xlarge $98.32/h, 8 GPUs'),
]

function gpuClass(id: string, label: string, peak: number, usdPerHour: number, instance: string): DeviceClass {
  return {
    id,
    label,
    flopsPerSecond: peak * GPU_FRACTION,
    throughputSource: 'assumption',
    throughputNote: `25.6% of the ${(peak / 1e12).toFixed(1)} TFLOP/s fp32 peak`,
    usdPerHour,
    priceNote: instance,
    priceSource: PRICE_SOURCE,
    priceAsOf: PRICE_AS_OF,
    gpu: true,
  }
}

/** The device class named `id` (case-insensitive), or undefined. */
export function deviceById(id: string): DeviceClass | undefined {
  return DEVICES.find((d) => d.id === id.toLowerCase())
}

/** The default GPU class for stages that declare GPUs (`resources.gpu > 0`). */
export const DEFAULT_GPU = 'a100'
