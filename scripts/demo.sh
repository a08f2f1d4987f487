#!/bin/sh
# A tour of hvmem's main job: a heap in emulated RAM, stage-2 tables built in it, and the tables read back.
# Uses a throw-away snapshot; set HVMEM_SNAPSHOT to keep it somewhere else.
set -eu
HVMEM="node $(dirname "$0")/../bin/run.cjs"
export HVMEM_SNAPSHOT="${HVMEM_SNAPSHOT:-$(mktemp -d)/demo.snap}"

run() {
  printf '\n$ hvmem %s\n' "$*"
  $HVMEM "$@"
}

run heap init --force                                  # 16 MiB heap at 0x4100_0000 in 1 GiB of RAM at 0x4000_0000
run alloc page --count 2                                # the plan's bump allocator: two 4 KiB pages
run alloc aligned --size 256 --align 2048
run mem write 0x4100_0000 0xdeadbeef                    # the plan's heap test: write, then read back
run mem read 0x4100_0000 16
run map region 0x4000_0000 1G                           # guest RAM: one 1 GiB block, Normal write-back, RW, executable
run map region 0x0900_0000 2M --attr device             # the PL011 UART: Device-nGnRE, execute-never
run map region 0x0800_0000 2M --attr readonly           # a read-only region (say, a flash image)
run dump tables --format ranges                         # ptdump-style ranges
run translate 0x0900_0010 --write                      # one address walked as the MMU would: output or fault, and PAR_EL1
run translate 0x0800_0000 --write                      # a write to the read-only region: a permission fault
cp "$HVMEM_SNAPSHOT" "$HVMEM_SNAPSHOT.before"
run map unmap 0x4020_0000 4K                            # punch a hole: the 1 GiB block is split, the rest kept
run map protect 0x4000_0000 2M --perm r                # read-only, not executable: split again
run dump tables --format ranges
run snapshot diff "$HVMEM_SNAPSHOT.before" "$HVMEM_SNAPSHOT" || [ $? -eq 1 ]   # what the two edits changed (exit 1: they differ, as diff(1))
printf 'alloc page\nalloc page --count 3\nmem write 0x4100_8000 0x1234 --width 4\n' > "$HVMEM_SNAPSHOT.batch"
run batch "$HVMEM_SNAPSHOT.batch"                       # three commands, one lock, one load, one atomic save
run dump map                                           # the IPA space and the heap as a picture
run regs                                               # the registers that install the tables
run heap status
# Other geometries: KVM's default stage 2 (40-bit IPA, two concatenated level-1 tables), and a 16 KiB granule
run heap init --force -s "$HVMEM_SNAPSHOT.kvm"
run map region 0x4000_0000 1G --preset kvm -s "$HVMEM_SNAPSHOT.kvm"
run heap init --force -s "$HVMEM_SNAPSHOT.16k"
run map region 0x4000_0000 64M --granule 16K --ipa-bits 47 -s "$HVMEM_SNAPSHOT.16k"
run map unmap 0x4020_0000 16K -s "$HVMEM_SNAPSHOT.16k"   # 16 KiB pages in a 32 MiB block
run translate 0x4020_4000 -s "$HVMEM_SNAPSHOT.16k"
printf '\nSnapshot: %s\n' "$HVMEM_SNAPSHOT"
