/* tether — a call on another stack, for x86-64 (System V ABI).
 *
 * tt__call_on_stack(void *stack_top, void (*fn)(void *), void *arg)
 *
 * Calls fn(arg) with the stack pointer at stack_top rounded down to 16
 * bytes, then returns on the caller's stack. The caller's stack pointer is
 * kept in rbp (callee-saved, so fn preserves it), and the CFI names rbp as
 * the frame's base: an unwinder stopped in fn steps through this frame back
 * to the caller's stack.
 */
#if defined(__x86_64__)
	.text
	.p2align 4
	.globl	tt__call_on_stack
	.hidden	tt__call_on_stack
	.type	tt__call_on_stack, @function
tt__call_on_stack:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
	andq	$-16, %rdi
	movq	%rdi, %rsp
	movq	%rdx, %rdi
	callq	*%rsi
	movq	%rbp, %rsp
	.cfi_def_cfa_register %rsp
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
	.cfi_endproc
	.size	tt__call_on_stack, .-tt__call_on_stack
#endif

	.section .note.GNU-stack,"",@progbits
