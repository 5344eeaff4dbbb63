// CommandList: the LU's running commands and the nexus's outstanding commands behave like an
// insertion-ordered Set, with a command in one list of each kind at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandList, CommandSlot } from '../../../src/scsi/command-list.js';
import { ScsiCommand, DataDirection, TaskAttribute } from '../../../src/scsi/command.js';
import { Buffer } from 'node:buffer';

function command(tag: number): ScsiCommand {
  return new ScsiCommand(
    {
      cdb: Buffer.from([0x00, 0, 0, 0, 0, 0]),
      lun: Buffer.alloc(8),
      tag,
      attribute: TaskAttribute.Simple,
      direction: DataDirection.None,
      expectedReadLength: 0,
      expectedWriteLength: 0,
    },
    () => {},
  );
}

test('sam5 8.6 task set: running and outstanding lists match an ordered Set through any adds and deletes', () => {
  const cmds = Array.from({ length: 40 }, (_, i) => command(i));
  const running = new CommandList(CommandSlot.Running);
  const outstanding = new CommandList(CommandSlot.Outstanding);
  const models = [new Set<ScsiCommand>(), new Set<ScsiCommand>()];
  let x = 12345;
  for (let step = 0; step < 5000; step++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const cmd = cmds[x % cmds.length]!;
    const which = (x >>> 8) & 1;
    const list = which === 0 ? running : outstanding;
    const model = models[which]!;
    if ((x >>> 9) % 3 === 0) assert.equal(list.delete(cmd), model.delete(cmd));
    else {
      list.add(cmd);
      model.add(cmd);
    }
    assert.equal(list.size, model.size);
    assert.equal(list.has(cmd), model.has(cmd));
  }
  assert.deepEqual(running.toArray(), [...models[0]!], 'running: oldest first');
  assert.deepEqual(outstanding.toArray(), [...models[1]!], 'outstanding: oldest first');
  for (const c of cmds) {
    assert.equal(running.has(c), models[0]!.has(c));
    assert.equal(outstanding.has(c), models[1]!.has(c), 'the two kinds of list do not disturb each other');
  }
});

test('command lists: a command added to a second list of the same kind leaves the first intact', () => {
  const a = new CommandList(CommandSlot.Running);
  const b = new CommandList(CommandSlot.Running);
  const [c1, c2, c3] = [command(1), command(2), command(3)];
  a.add(c1);
  a.add(c2);
  a.add(c3);
  b.add(c2);
  assert.deepEqual(a.toArray(), [c1, c3]);
  assert.deepEqual(b.toArray(), [c2]);
  assert.equal(a.delete(c2), false, 'not in a any more');
  assert.equal(a.size, 2);
  assert.equal(b.size, 1);
});
