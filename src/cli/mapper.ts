import {HvmemError} from '../core/errors.js'
import type {Machine} from '../core/machine.js'
import type {IdentityMapper} from '../core/mapper.js'

/** The snapshot's mapper, for commands that read tables; a clear error when none was created yet. */
export function requireMapper(machine: Machine): IdentityMapper {
  const mapper = machine.mapper
  if (mapper === undefined) throw new HvmemError('input', 'the snapshot has no translation tables yet; create them with "hvmem map region"')
  return mapper
}
