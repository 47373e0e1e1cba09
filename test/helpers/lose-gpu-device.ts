/**
 * A preload (`node --import`, or NODE_OPTIONS, which reaches worker threads too) for tests of a process whose
 * GPU device is lost while it works, as a driver reset would lose it: once the file that
 * $SEARCH_R3_TEST_LOSE_GPU names exists, the next read of any GPU device in the process loses that device
 * through the public hook the fault tests use (GpuDevice.simulateLoss) and removes the file. So the test
 * chooses when the loss happens, and a device opened after it (a restarted model worker's) is lost only
 * when the test creates the file again.
 *
 * With $SEARCH_R3_TEST_GPU_CLOSED also set, closing a device (GpuDevice.shutdown) first waits a second, as a
 * GPU still draining its queue would, and adds a line to the file it names once the GPU thread has ended:
 * so a test can tell whether the thread that owned the device was allowed to close it.
 */
import { appendFileSync, existsSync, rmSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { GpuDevice } from '../../src/tensor/webgpu/gpu-device.js';

const trigger = process.env.SEARCH_R3_TEST_LOSE_GPU;
if (trigger) {
  const read = GpuDevice.prototype.read;
  GpuDevice.prototype.read = function (this: GpuDevice, ...args: Parameters<GpuDevice['read']>): Uint8Array {
    if (existsSync(trigger)) {
      rmSync(trigger, { force: true });
      this.simulateLoss();
    }
    return read.apply(this, args);
  };
}

const closedLog = process.env.SEARCH_R3_TEST_GPU_CLOSED;
if (closedLog) {
  const shutdown = GpuDevice.prototype.shutdown;
  GpuDevice.prototype.shutdown = async function (this: GpuDevice, ...args: Parameters<GpuDevice['shutdown']>) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await shutdown.apply(this, args);
    appendFileSync(closedLog, `thread ${threadId}\n`);
  };
}
