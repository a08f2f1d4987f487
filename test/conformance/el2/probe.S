// hvmem conformance probe: an EL2 program for QEMU's `virt` machine (virtualization=on) that asks
// the Arm MMU model to translate addresses with AT and prints PAR_EL1 for each.
//
// Assembled with plain aarch64-linux-gnu-as (no C preprocessor), linked by probe.ld at 0x4020_0000.
// Code, data and stack stay inside 0x4020_0000-0x403F_FFFF. test/conformance/qemu.ts is the runner.
//
// Parameter block, loaded by the runner at PARAMS = 0x4040_0000 (all u64, little-endian):
//   [0] magic 0x45424f5250564d48 (the bytes "HMVPROBE")
//   [1] regime: 2 = stage 2 (AT S12E1R/W), 1 = stage 1 EL2 regime (AT S1E2R/W),
//       3 = stage 1 of the EL1&0 regime (AT S1E1R/W, S1E0R/W, S1E1RP/WP; layout below)
//   [2] VTTBR_EL2   [3] VTCR_EL2   [4] HCR_EL2 (written in both regimes)
//   [5] TTBR0_EL2   [6] TCR_EL2    [7] MAIR_EL2
//   [8] bits ORed into SCTLR_EL2 for stage 1 (M bit 0, C bit 2, I bit 12)
//   [9] probe count N (at most MAX_PROBES, so the block fits in 2 MiB: 0x4040_0000-0x405F_FFFF)
//   [10..10+N) probe addresses; bit 63 set = write probe (AT ..W), clear = read probe (AT ..R)
// Regime 3 (EL1&0 stage 1, HCR_EL2 with E2H, TGE, VM and DC clear; the EL2 MMU stays off):
//   [2] TTBR1_EL1   [3] bits ORed into SCTLR_EL1 (M, bit 0)   [4] HCR_EL2
//   [5] TTBR0_EL1   [6] TCR_EL1    [7] MAIR_EL1   [8] unused
//   [9] probe count N (at most MAX_PROBES / 2)
//   [10..10+2N) pairs {VA (all 64 bits), kind}: kind 0 AT S1E1R, 1 S1E1W, 2 S1E0R, 3 S1E0W,
//       4 S1E1RP, 5 S1E1WP (the last two with PSTATE.PAN set, which the program sets at EL2)
// Regime 4 (both stages of EL1&0: HCR_EL2.VM set, E2H and TGE clear, SCTLR_EL1.M set; EL2 MMU off):
//   [2] TTBR1_EL1   [3] VTCR_EL2   [4] HCR_EL2 (VM and RW)
//   [5] TTBR0_EL1   [6] TCR_EL1    [7] MAIR_EL1   [8] VTTBR_EL2
//   [9] probe count N (at most MAX_PROBES / 2)
//   [10..10+2N) pairs {VA, kind}: kind 0 AT S12E1R, 1 S12E1W, 2 S12E0R, 3 S12E0W
//
// Output on the PL011 UART (data register 0x0900_0000, FR at +0x18, TXFF = FR bit 5):
//   one line per probe: PAR_EL1 as 16 lowercase hex digits, then "DONE <N in decimal>",
//   then semihosting SYS_EXIT with status 0.
// Errors: "ERR <what>" (status 2); any exception taken to EL2 prints
//   "EXC esr=<16 hex> far=<16 hex> elr=<16 hex> vec=<16 hex>" (vec = offset of the vector entry
//   from VBAR_EL2) and exits with status 1, so a mistake shows up instead of a hang.
//
// Stage 1: once SCTLR_EL2.M is set, this program's own code and stack (0x4020_0000-0x403F_FFFF),
// the parameter block (0x4040_0000-0x405F_FFFF) and the UART (0x0900_0000-0x091F_FFFF) are reached
// THROUGH the tables under test. A stage-1 scenario must therefore identity-map
// 0x4020_0000-0x4060_0000 as Normal, executable, read/write and 0x0900_0000-0x0920_0000 as Device
// (qemu.ts exports them as PROGRAM_RANGE and UART_RANGE), with pages or blocks of any size.
//
// Nothing here depends on the translation granule or the input size: TCR_EL2 and VTCR_EL2 (TG0,
// T0SZ, SL0, PS) are written exactly as the parameter block has them, the TLB invalidations are
// whole-regime ones, and every address the program touches is below 2^31 (inside any input size of
// 32 bits or more) and aligned to 2 MiB (so to any page size: 4, 16 or 64 KiB). The exception
// handler turns the EL2 MMU off before it prints, so it works whatever the tables hold.

        .arch   armv8.2-a                       // PAN (msr pan) and AT S1E1RP/WP (FEAT_PAN2)
        .equ    PARAMS,      0x40400000
        .equ    PARAM_MAGIC, 0x45424f5250564d48
        .equ    HEADER_WORDS, 10
        .equ    MAX_PROBES,  (0x200000 / 8) - HEADER_WORDS
        // SCTLR_EL1 RES1 bits (11, 20, 22, 23, 28, 29) with M (bit 0) clear: stage 1 of EL1&0 off.
        .equ    SCTLR_EL1_MMU_OFF, 0x30d00800

        .section .text.boot, "ax"
        .global _start
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el2, x0
        isb

        mrs     x0, CurrentEL
        cmp     x0, #(2 << 2)
        b.eq    1f
        adr     x0, msg_not_el2
        b       fail_params
1:
        ldr     x19, =PARAMS
        ldr     x0, [x19, #0]
        ldr     x1, =PARAM_MAGIC
        cmp     x0, x1
        b.eq    2f
        adr     x0, msg_magic
        b       fail_params
2:
        ldr     x20, [x19, #8]                  // regime
        ldr     x21, [x19, #72]                 // N
        ldr     x1, =MAX_PROBES
        cmp     x21, x1
        b.ls    3f
        adr     x0, msg_count
        b       fail_params
3:
        add     x22, x19, #(HEADER_WORDS * 8)   // probe array
        mov     x23, #0                         // probe index

        ldr     x0, =SCTLR_EL1_MMU_OFF
        msr     sctlr_el1, x0

        cmp     x20, #2
        b.eq    setup_stage2
        cmp     x20, #1
        b.eq    setup_stage1
        cmp     x20, #3
        b.eq    setup_el1
        cmp     x20, #4
        b.eq    setup_two
        adr     x0, msg_regime
        b       fail_params

// ---- stage 1 of EL1&0: AT S1E*{R,W} from EL2, the EL2 MMU off -----------------------------
setup_el1:
        ldr     x1, =MAX_PROBES
        lsr     x1, x1, #1                      // pairs: at most MAX_PROBES / 2
        cmp     x21, x1
        b.ls    1f
        adr     x0, msg_count
        b       fail_params
1:      ldr     x0, [x19, #32]
        msr     hcr_el2, x0
        ldr     x0, [x19, #56]
        msr     mair_el1, x0
        ldr     x0, [x19, #48]
        msr     tcr_el1, x0
        ldr     x0, [x19, #40]
        msr     ttbr0_el1, x0
        ldr     x0, [x19, #16]
        msr     ttbr1_el1, x0
        ldr     x1, [x19, #24]
        ldr     x0, =SCTLR_EL1_MMU_OFF
        orr     x0, x0, x1
        msr     sctlr_el1, x0
        isb
        tlbi    alle1
        dsb     sy
        msr     pan, #1                         // for AT S1E1RP/WP only (S1E1R/W ignore PAN)
        isb
el1_loop:
        cmp     x23, x21
        b.hs    done
        add     x2, x22, x23, lsl #4
        ldp     x1, x3, [x2]
        cbz     x3, 10f
        cmp     x3, #1
        b.eq    11f
        cmp     x3, #2
        b.eq    12f
        cmp     x3, #3
        b.eq    13f
        cmp     x3, #4
        b.eq    14f
        cmp     x3, #5
        b.eq    15f
        adr     x0, msg_kind
        b       fail_params
10:     at      s1e1r, x1
        b       20f
11:     at      s1e1w, x1
        b       20f
12:     at      s1e0r, x1
        b       20f
13:     at      s1e0w, x1
        b       20f
14:     at      s1e1rp, x1
        b       20f
15:     at      s1e1wp, x1
20:     isb
        mrs     x0, par_el1
        bl      put_par_line
        add     x23, x23, #1
        b       el1_loop

// ---- both stages of EL1&0: AT S12E1R/W, S12E0R/W from EL2, the EL2 MMU off ----------------
setup_two:
        ldr     x1, =MAX_PROBES
        lsr     x1, x1, #1
        cmp     x21, x1
        b.ls    1f
        adr     x0, msg_count
        b       fail_params
1:      ldr     x0, [x19, #24]
        msr     vtcr_el2, x0
        ldr     x0, [x19, #64]
        msr     vttbr_el2, x0
        ldr     x0, [x19, #56]
        msr     mair_el1, x0
        ldr     x0, [x19, #48]
        msr     tcr_el1, x0
        ldr     x0, [x19, #40]
        msr     ttbr0_el1, x0
        ldr     x0, [x19, #16]
        msr     ttbr1_el1, x0
        ldr     x0, [x19, #32]
        msr     hcr_el2, x0
        ldr     x0, =SCTLR_EL1_MMU_OFF
        orr     x0, x0, #1                      // M: stage 1 of EL1&0 on
        msr     sctlr_el1, x0
        isb
        tlbi    alle1
        tlbi    vmalls12e1
        dsb     sy
        isb
two_loop:
        cmp     x23, x21
        b.hs    done
        add     x2, x22, x23, lsl #4
        ldp     x1, x3, [x2]
        cbz     x3, 10f
        cmp     x3, #1
        b.eq    11f
        cmp     x3, #2
        b.eq    12f
        cmp     x3, #3
        b.eq    13f
        adr     x0, msg_kind
        b       fail_params
10:     at      s12e1r, x1
        b       20f
11:     at      s12e1w, x1
        b       20f
12:     at      s12e0r, x1
        b       20f
13:     at      s12e0w, x1
20:     isb
        mrs     x0, par_el1
        bl      put_par_line
        add     x23, x23, #1
        b       two_loop

// ---- stage 2: AT S12E1R/W with EL1&0 stage 1 off (HCR_EL2.DC makes it flat Normal WB) --------
setup_stage2:
        ldr     x0, [x19, #24]
        msr     vtcr_el2, x0
        ldr     x0, [x19, #16]
        msr     vttbr_el2, x0
        ldr     x0, [x19, #32]
        msr     hcr_el2, x0
        isb
        tlbi    alle1
        tlbi    vmalls12e1
        dsb     sy
        isb
stage2_loop:
        cmp     x23, x21
        b.hs    done
        ldr     x0, [x22, x23, lsl #3]
        and     x1, x0, #0x7fffffffffffffff
        tbnz    x0, #63, 1f
        at      s12e1r, x1
        b       2f
1:      at      s12e1w, x1
2:      isb
        mrs     x0, par_el1
        bl      put_par_line
        add     x23, x23, #1
        b       stage2_loop

// ---- stage 1, EL2 regime: AT S1E2R/W with the EL2 MMU on -----------------------------------
setup_stage1:
        ldr     x0, [x19, #32]
        msr     hcr_el2, x0
        ldr     x0, [x19, #56]
        msr     mair_el2, x0
        ldr     x0, [x19, #48]
        msr     tcr_el2, x0
        ldr     x0, [x19, #40]
        msr     ttbr0_el2, x0
        isb
        tlbi    alle2
        dsb     sy
        isb
        ldr     x1, [x19, #64]
        mrs     x0, sctlr_el2
        orr     x0, x0, x1
        msr     sctlr_el2, x0
        isb
        // From here every fetch, load and store goes through the tables under test.
stage1_loop:
        cmp     x23, x21
        b.hs    done
        ldr     x0, [x22, x23, lsl #3]
        and     x1, x0, #0x7fffffffffffffff
        tbnz    x0, #63, 1f
        at      s1e2r, x1
        b       2f
1:      at      s1e2w, x1
2:      isb
        mrs     x0, par_el1
        bl      put_par_line
        add     x23, x23, #1
        b       stage1_loop

done:
        adr     x0, msg_done
        bl      puts
        mov     x0, x21
        bl      put_dec
        mov     w0, #'\n'
        bl      putc
        adr     x1, exit_ok
        b       semihost_exit

// x0 = message (NUL-terminated): prints "ERR <message>\n", exits with status 2.
fail_params:
        mov     x24, x0
        adr     x0, msg_err
        bl      puts
        mov     x0, x24
        bl      puts
        mov     w0, #'\n'
        bl      putc
        adr     x1, exit_params
        b       semihost_exit

        .include "uart.inc"

// x0 = PAR: "<16 hex>\n".
put_par_line:
        stp     x29, x30, [sp, #-16]!
        bl      put_hex64
        mov     w0, #'\n'
        bl      putc
        ldp     x29, x30, [sp], #16
        ret

        .ltorg

// ---- exceptions: report and exit with status 1 ------------------------------------------------
        .balign 0x800
vectors:
        .irp    offset, 0x000, 0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0x480, 0x500, 0x580, 0x600, 0x680, 0x700, 0x780
        .balign 0x80
        mov     x18, #\offset
        b       exception
        .endr

exception:
        // Turn the EL2 MMU off first: printing must not depend on the tables that may have caused
        // this. The code is identity-mapped (or we would not be here), so fetching continues.
        mrs     x0, sctlr_el2
        bic     x0, x0, #1
        msr     sctlr_el2, x0
        isb
        ldr     x0, =stack_top
        mov     sp, x0
        // A second exception while reporting the first: exit at once.
        adr     x0, in_exception
        ldr     x1, [x0]
        cbz     x1, 1f
        adr     x1, exit_exception
        b       semihost_exit
1:      mov     x1, #1
        str     x1, [x0]
        adr     x0, msg_exc_esr
        bl      puts
        mrs     x0, esr_el2
        bl      put_hex64
        adr     x0, msg_exc_far
        bl      puts
        mrs     x0, far_el2
        bl      put_hex64
        adr     x0, msg_exc_elr
        bl      puts
        mrs     x0, elr_el2
        bl      put_hex64
        adr     x0, msg_exc_vec
        bl      puts
        mov     x0, x18
        bl      put_hex64
        mov     w0, #'\n'
        bl      putc
        adr     x1, exit_exception
        b       semihost_exit

        .ltorg

        .section .rodata, "a"
msg_done:       .asciz  "DONE "
msg_err:        .asciz  "ERR "
msg_not_el2:    .asciz  "not started at EL2 (run QEMU with -machine virt,virtualization=on)"
msg_magic:      .asciz  "bad parameter block magic at 0x40400000"
msg_count:      .asciz  "too many probes for the 2 MiB parameter block"
msg_regime:     .asciz  "unknown regime (use 1 = stage 1, 2 = stage 2, 3 = EL1&0 stage 1, 4 = EL1&0 both stages)"
msg_kind:       .asciz  "unknown EL1&0 probe kind (use 0..5)"
msg_exc_esr:    .asciz  "EXC esr="
msg_exc_far:    .asciz  " far="
msg_exc_elr:    .asciz  " elr="
msg_exc_vec:    .asciz  " vec="

        .section .data, "aw"
        .balign 8
exit_ok:        .quad   0x20026, 0
exit_exception: .quad   0x20026, 1
exit_params:    .quad   0x20026, 2
in_exception:   .quad   0

        .section .bss, "aw", %nobits
        .balign 16
stack:          .space  0x4000
stack_top:
