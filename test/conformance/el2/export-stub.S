// hvmem export stub: an EL2 program for QEMU's `virt` machine linked together with the assembly
// `hvmem snapshot export --format asm` writes (test/conformance/export.test.ts). It installs the
// tables with the export's own routine, hvmem_install_tables (and for the EL2 stage-1 regime turns
// the MMU on with hvmem_enable_mmu), then translates each probe with AT and prints PAR_EL1.
//
// It reads el2/probe.S's parameter block at 0x4040_0000 (magic, [1] regime 2 or 1, [4] HCR_EL2,
// [9] probe count, [10..] probes with bit 63 = write) and prints as probe.S does: one PAR per line
// in 16 lowercase hex digits, "DONE <N>", then semihosting SYS_EXIT 0. Any exception prints "EXC"
// and exits with status 1. Linked by export-stub.ld: code at 0x4020_0000, the tables at 0x4800_0000.

        .arch   armv8-a
        .equ    PARAMS,      0x40400000
        .weak   hvmem_enable_mmu

        .section .text.boot, "ax"
        .global _start
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el2, x0
        isb
        ldr     x19, =PARAMS
        ldr     x20, [x19, #8]                  // regime: 2 = stage 2, 1 = EL2 stage 1
        ldr     x21, [x19, #72]                 // N
        add     x22, x19, #80                   // probes
        mov     x23, #0
        ldr     x0, [x19, #32]
        msr     hcr_el2, x0                     // the caller's part: VM (stage 2) is not the routine's
        isb
        bl      hvmem_install_tables
        cmp     x20, #1
        b.ne    loop
        bl      hvmem_enable_mmu                // stage 1: from here through the tables under test
loop:
        cmp     x23, x21
        b.hs    done
        ldr     x0, [x22, x23, lsl #3]
        and     x1, x0, #0x7fffffffffffffff
        cmp     x20, #1
        b.eq    stage1
        tbnz    x0, #63, 1f
        at      s12e1r, x1
        b       2f
1:      at      s12e1w, x1
        b       2f
stage1: tbnz    x0, #63, 1f
        at      s1e2r, x1
        b       2f
1:      at      s1e2w, x1
2:      isb
        mrs     x0, par_el1
        bl      put_hex64
        mov     w0, #'\n'
        bl      putc
        add     x23, x23, #1
        b       loop

done:
        adr     x0, msg_done
        bl      puts
        mov     x0, x21
        bl      put_dec
        mov     w0, #'\n'
        bl      putc
        adr     x1, exit_ok
        b       semihost_exit

        .include "uart.inc"                     // semihost_exit, putc, puts, put_hex64, put_dec

        .ltorg

        .balign 0x800
vectors:
        .rept   16
        .balign 0x80
        b       exception
        .endr
exception:
        mrs     x0, sctlr_el2                   // MMU off first: printing must not need the tables
        bic     x0, x0, #1
        msr     sctlr_el2, x0
        isb
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, msg_exc
        bl      puts
        adr     x1, exit_exception
        b       semihost_exit
        .ltorg

        .section .rodata, "a"
msg_done:       .asciz  "DONE "
msg_exc:        .asciz  "EXC in the export stub\n"

        .section .data, "aw"
        .balign 8
exit_ok:        .quad   0x20026, 0
exit_exception: .quad   0x20026, 1

        .section .bss, "aw", %nobits
        .balign 16
stack:          .space  0x4000
stack_top:
