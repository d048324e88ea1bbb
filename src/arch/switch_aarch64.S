/* tether — the context switch for aarch64 (AAPCS64).
 *
 * tt__switch(void **save_sp, void *new_sp)
 *
 * Saves the callee-saved registers x19-x28, the frame pointer x29, the
 * link register x30, the low halves d8-d15 of v8-v15, and FPCR, on the
 * current stack; stores sp in *save_sp; loads new_sp and restores. No
 * system call.
 *
 * Saved frame, 176 bytes from the stored sp:
 *
 *   sp+0    x19 x20      sp+96   d8  d9
 *   sp+16   x21 x22      sp+112  d10 d11
 *   sp+32   x23 x24      sp+128  d12 d13
 *   sp+48   x25 x26      sp+144  d14 d15
 *   sp+64   x27 x28      sp+160  fpcr, 8 spare
 *   sp+80   x29 x30
 */
#if defined(__aarch64__)

/* Push the frame described above; leaves FPCR in x9. */
.macro SAVE_FRAME
	sub	sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	.cfi_rel_offset x29, 80
	.cfi_rel_offset x30, 88
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
.endm

/* Restore everything from the frame at sp and pop it (no return). */
.macro RESTORE_FRAME
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	.cfi_adjust_cfa_offset -176
.endm

	.text
	.p2align 4
	.globl	tt__switch
	.hidden	tt__switch
	.type	tt__switch, %function
tt__switch:
	.cfi_startproc
	SAVE_FRAME
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	RESTORE_FRAME
	ret
	.cfi_endproc
	.size	tt__switch, .-tt__switch

/* tt__spawn_call(void **save_sp, void *stack_top, void *g): see
 * switch_x86_64.S. Saves the frame tt__switch saves, calls
 * tt__g_direct_entry(g) on the new stack with the default FPCR, and if that
 * returns (the goroutine ended without switching away), restores the
 * frame from the stack pointer it returns and returns to the caller. */
	.p2align 4
	.globl	tt__spawn_call
	.hidden	tt__spawn_call
	.type	tt__spawn_call, %function
tt__spawn_call:
	.cfi_startproc
	SAVE_FRAME
	mov	x10, sp
	str	x10, [x0]
	.cfi_remember_state
	mov	sp, x1
	.cfi_undefined x30
	cbz	x9, 1f
	msr	fpcr, xzr
1:	mov	x29, #0
	mov	x0, x2
	bl	tt__g_direct_entry
	mov	sp, x0
	.cfi_restore_state
	RESTORE_FRAME
	ret
	.cfi_endproc
	.size	tt__spawn_call, .-tt__spawn_call

/* tt__jump(void *new_sp): the second half of tt__switch, for a goroutine
 * that has ended and needs nothing saved. */
	.p2align 4
	.globl	tt__jump
	.hidden	tt__jump
	.type	tt__jump, %function
tt__jump:
	.cfi_startproc
	.cfi_undefined x30
	mov	sp, x0
	.cfi_adjust_cfa_offset 176
	RESTORE_FRAME
	ret
	.cfi_endproc
	.size	tt__jump, .-tt__jump

#endif

	.section .note.GNU-stack,"",%progbits
