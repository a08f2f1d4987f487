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
        .equ    UART_BASE,   0x09000000
        .equ    PARAMS,      0x40400000
        .equ    SYS_EXIT,    0x18
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

semihost_exit:
        mov     x0, #SYS_EXIT
        hlt     #0xf000
        b       .

putc:                                           // w0; clobbers x9, x10
        ldr     x9, =UART_BASE
1:      ldr     w10, [x9, #0x18]
        tbnz    w10, #5, 1b
        and     w0, w0, #0xff
        str     w0, [x9]
        ret

puts:                                           // x0 = NUL-terminated; clobbers x0, x9-x11
        stp     x29, x30, [sp, #-16]!
        mov     x11, x0
1:      ldrb    w0, [x11], #1
        cbz     w0, 2f
        bl      putc
        b       1b
2:      ldp     x29, x30, [sp], #16
        ret

put_hex64:                                      // x0; clobbers x0, x9-x13
        stp     x29, x30, [sp, #-16]!
        mov     x12, x0
        mov     x13, #60
1:      lsr     x0, x12, x13
        and     x0, x0, #0xf
        cmp     x0, #10
        b.lo    2f
        add     x0, x0, #('a' - '0' - 10)
2:      add     x0, x0, #'0'
        bl      putc
        subs    x13, x13, #4
        b.pl    1b
        ldp     x29, x30, [sp], #16
        ret

put_dec:                                        // x0; clobbers x0, x9-x15
        stp     x29, x30, [sp, #-48]!
        add     x14, sp, #48
        mov     x15, #10
1:      udiv    x9, x0, x15
        msub    x10, x9, x15, x0
        add     x10, x10, #'0'
        strb    w10, [x14, #-1]!
        mov     x0, x9
        cbnz    x0, 1b
        add     x11, sp, #48
2:      cmp     x14, x11
        b.hs    3f
        ldrb    w0, [x14], #1
        bl      putc
        b       2b
3:      ldp     x29, x30, [sp], #48
        ret

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
