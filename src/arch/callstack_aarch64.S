/* tether — a call on another stack, for aarch64 (AAPCS64).
 *
 * tt__call_on_stack(void *stack_top, void (*fn)(void *), void *arg)
 *
 * Calls fn(arg) with sp at stack_top rounded down to 16 bytes, then
 * returns on the caller's stack. The caller's frame record (x29, x30) is
 * pushed on the caller's stack and x29 (callee-saved, so fn preserves it)
 * keeps pointing at it; the CFI names x29 as the frame's base, so an
 * unwinder stopped in fn steps through this frame back to the caller.
 */
#if defined(__aarch64__)
	.text
	.p2align 4
	.globl	tt__call_on_stack
	.hidden	tt__call_on_stack
	.type	tt__call_on_stack, %function
tt__call_on_stack:
	.cfi_startproc
	stp	x29, x30, [sp, #-16]!
	.cfi_def_cfa_offset 16
	.cfi_offset x29, -16
	.cfi_offset x30, -8
	mov	x29, sp
	.cfi_def_cfa_register x29
	and	x0, x0, #0xfffffffffffffff0
	mov	sp, x0
	mov	x0, x2
	blr	x1
	mov	sp, x29
	.cfi_def_cfa_register sp
	ldp	x29, x30, [sp], #16
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	ret
	.cfi_endproc
	.size	tt__call_on_stack, .-tt__call_on_stack
#endif

	.section .note.GNU-stack,"",%progbits
