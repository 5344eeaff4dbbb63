/** Device types by peripheral device type code (tgt's --device-type). */
import { controllerDeviceType } from './controller.js';
import { diskDeviceType } from './sbc.js';
import type { DeviceType } from './types.js';

export { controllerDeviceType, diskDeviceType };
export type { DeviceType };

/** Registered device types (only these can be created with `logicalunit new`). */
export const deviceTypes: ReadonlyMap<number, DeviceType> = new Map([
  [diskDeviceType.code, diskDeviceType],
  [controllerDeviceType.code, controllerDeviceType],
]);
