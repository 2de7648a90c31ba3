/* The one frame in libframealloc.so that catches C++ exceptions: the nothrow
 * operator new forms call their new_handler through it. Its personality routine,
 * fa_cxx_catch_personality (operators_failed.c), catches every exception thrown
 * below it and lands on fa_cxx_catch_landing with the exception in %rax.
 *
 * void *fa_cxx_call_catching(void (*handler)(void))
 *   returns NULL when handler returned, the _Unwind_Exception when it threw. */
#if defined(__x86_64__)
    .text
    .p2align 4
    .globl fa_cxx_call_catching
    .hidden fa_cxx_call_catching
    .type fa_cxx_call_catching, @function
fa_cxx_call_catching:
    .cfi_startproc
    /* DW_EH_PE_pcrel | DW_EH_PE_sdata4: the personality's address, no relocation at load. */
    .cfi_personality 0x1b, fa_cxx_catch_personality
    subq $8, %rsp                   /* the call below needs a 16-byte aligned stack */
    .cfi_adjust_cfa_offset 8
    call *%rdi
    xorl %eax, %eax
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    ret
    /* Entered from the unwinder with the stack as it was at the call. */
    .cfi_adjust_cfa_offset 8
    .globl fa_cxx_catch_landing
    .hidden fa_cxx_catch_landing
fa_cxx_catch_landing:
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size fa_cxx_call_catching, . - fa_cxx_call_catching
#else
#error "operators_catch.S: only x86_64 is written"
#endif
    .section .note.GNU-stack, "", @progbits
