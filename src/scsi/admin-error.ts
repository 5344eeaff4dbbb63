/**
 * Management error numbers, exactly tgt's `enum tgtadm_errno` (usr/tgtadm_error.h), because
 * they travel in the control socket's response header and tgtadm maps them to its messages.
 */
export enum AdminError {
  Success = 0,
  UnknownErr = 1,
  NoMem = 2,
  NoDriver = 3,
  NoTarget = 4,
  NoLun = 5,
  NoSession = 6,
  NoConnection = 7,
  NoBinding = 8,
  TargetExist = 9,
  LunExist = 10,
  BindingExist = 11,
  AclExist = 12,
  AclNoExist = 13,
  UserExist = 14,
  NoUser = 15,
  TooManyUser = 16,
  InvalidRequest = 17,
  OutAccountExist = 18,
  TargetActive = 19,
  LunActive = 20,
  DriverActive = 21,
  UnsupportedOperation = 22,
  UnknownParam = 23,
  PreventRemoval = 24,
}

/** tgtadm's message for each error (printed as `tgtadm: <message>`). */
export const ADMIN_ERROR_MESSAGES: Readonly<Record<AdminError, string>> = {
  [AdminError.Success]: 'success',
  [AdminError.UnknownErr]: 'unknown error',
  [AdminError.NoMem]: 'out of memory',
  [AdminError.NoDriver]: "can't find the driver",
  [AdminError.NoTarget]: "can't find the target",
  [AdminError.NoLun]: "can't find the logical unit",
  [AdminError.NoSession]: "can't find the session",
  [AdminError.NoConnection]: "can't find the connection",
  [AdminError.NoBinding]: "can't find the binding",
  [AdminError.TargetExist]: 'this target already exists',
  [AdminError.LunExist]: 'this logical unit number already exists',
  [AdminError.BindingExist]: 'this binding already exists',
  [AdminError.AclExist]: 'this access control rule already exists',
  [AdminError.AclNoExist]: 'this access control rule does not exist',
  [AdminError.UserExist]: 'this account already exists',
  [AdminError.NoUser]: "can't find the account",
  [AdminError.TooManyUser]: 'too many accounts',
  [AdminError.InvalidRequest]: 'invalid request',
  [AdminError.OutAccountExist]: 'this target already has an outgoing account',
  [AdminError.TargetActive]: 'this target is still active',
  [AdminError.LunActive]: 'this logical unit is still active',
  [AdminError.DriverActive]: 'this driver is busy',
  [AdminError.UnsupportedOperation]: "this operation isn't supported",
  [AdminError.UnknownParam]: 'unknown parameter',
  [AdminError.PreventRemoval]: 'this device has Prevent Removal set',
};

/** tid value meaning "not given" / the global (discovery) target, as in tgt (GLOBAL_TID). */
export const GLOBAL_TID = -1;
