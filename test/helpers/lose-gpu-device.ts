/**
 * A preload (`node --import`, or NODE_OPTIONS, which reaches worker threads too) for tests of a process whose
 * GPU device is lost while it works, as a driver reset would lose it: once the file that
 * $SEARCH_R3_TEST_LOSE_GPU names exists, the next read of any GPU device in the process loses that device
 * through the public hook the fault tests use (GpuDevice.simulateLoss) and removes the file. So the test
 * chooses when the loss happens, and a device opened after it (a restarted model worker's) is lost only
 * when the test creates the file again.
 */
import { existsSync, rmSync } from 'node:fs';
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
