/* tether — the context switch for x86-64 (System V ABI).
 *
 * tt__switch(void **save_sp, void *new_sp)
 *
 * Saves what the ABI says survives a call — rbx, rbp, r12-r15, the MXCSR
 * control bits and the x87 control word — on the current stack, stores the
 * stack pointer in *save_sp, loads new_sp and restores the same set from
 * there. No system call: signal masks are per thread, not per goroutine.
 *
 * Saved frame, from the stored stack pointer upward:
 *
 *   sp+0   mxcsr (4 bytes), x87 control word (2 bytes), 2 spare
 *   sp+8   r15
 *   sp+16  r14
 *   sp+24  r13
 *   sp+32  r12
 *   sp+40  rbx
 *   sp+48  rbp
 *   sp+56  return address
 *
 * Every stack that is switched to has this same shape, so the CFI below
 * stays true across the `mov %rsi, %rsp`: a debugger or unwinder stopped
 * anywhere in here finds the caller of the side it is on.
 */
#if defined(__x86_64__)

/* Push the frame described above and store the stack pointer in *%rdi.
 * Leaves the saved MXCSR in %eax and control word in %ecx. */
.macro SAVE_FRAME
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movl	(%rsp), %eax
	movzwl	4(%rsp), %ecx
	movq	%rsp, (%rdi)
.endm

/* Pop the registers of the frame at %rsp (FP controls already dealt
 * with) and return through it. */
.macro RESTORE_FRAME
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore %r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbp
	ret
.endm

	.text
	.p2align 4
	.globl	tt__switch
	.hidden	tt__switch
	.type	tt__switch, @function
tt__switch:
	.cfi_startproc
	SAVE_FRAME
	movq	%rsi, %rsp
	/* Loading MXCSR or the control word costs more than the rest of
	 * the switch; almost always both sides have the same, so compare. */
	cmpl	(%rsp), %eax
	jne	1f
	cmpw	4(%rsp), %cx
	jne	1f
2:	RESTORE_FRAME
1:	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	jmp	2b
	.cfi_endproc
	.size	tt__switch, .-tt__switch

/* tt__spawn_call(void **save_sp, void *stack_top, void *g)
 *
 * Starts a new goroutine as a call on its own stack. Saves the caller's
 * context exactly as tt__switch does (so a switch can resume it), moves to
 * stack_top with the default floating-point controls, and calls
 * tt__g_direct_entry(g). If the goroutine ends without ever switching
 * away, that call returns the caller's saved stack pointer and this
 * function returns to its caller like an ordinary function: calls and
 * returns stay paired, so the processor predicts them. Otherwise the
 * caller is resumed by a switch, which returns to the same place.
 */
	.p2align 4
	.globl	tt__spawn_call
	.hidden	tt__spawn_call
	.type	tt__spawn_call, @function
tt__spawn_call:
	.cfi_startproc
	SAVE_FRAME
	.cfi_remember_state
	movq	%rsi, %rsp
	/* On the new stack this is the outermost frame. */
	.cfi_undefined %rip
	cmpl	$0x1f80, %eax
	jne	3f
	cmpw	$0x037f, %cx
	jne	3f
4:	movq	%rdx, %rdi
	xorl	%ebp, %ebp
	callq	tt__g_direct_entry
	/* The goroutine ended without leaving its stack: back to ours. */
	movq	%rax, %rsp
	.cfi_restore_state
	movl	(%rsp), %eax
	stmxcsr	-8(%rsp)
	cmpl	-8(%rsp), %eax
	jne	5f
6:	fnstcw	-8(%rsp)
	movzwl	-8(%rsp), %eax
	cmpw	4(%rsp), %ax
	jne	7f
8:	RESTORE_FRAME
3:	/* Give the new goroutine the default controls (a thread's). */
	movl	$0x1f80, -8(%rsp)
	ldmxcsr	-8(%rsp)
	movw	$0x037f, -8(%rsp)
	fldcw	-8(%rsp)
	jmp	4b
5:	ldmxcsr	(%rsp)
	jmp	6b
7:	fldcw	4(%rsp)
	jmp	8b
	.cfi_endproc
	.size	tt__spawn_call, .-tt__spawn_call

/* tt__jump(void *new_sp): the second half of tt__switch, for a goroutine
 * that has ended and needs nothing saved. */
	.p2align 4
	.globl	tt__jump
	.hidden	tt__jump
	.type	tt__jump, @function
tt__jump:
	.cfi_startproc
	movq	%rdi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	tt__jump, .-tt__jump

#endif

	.section .note.GNU-stack,"",@progbits
