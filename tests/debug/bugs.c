/* Deliberate memory bugs for the FRAMEALLOC_DEBUG tests: an overrun, a use after
 * frame, a read of freed memory, and a clean run. Built with -g so that reports can
 * name make_label and frame_temp with their lines. */
#include <framealloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) char *make_label(void) { return malloc(24); }
__attribute__((noinline)) char *frame_temp(void) { return malloc(40); }
int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "overrun")) {
    char *p = make_label();
    memcpy(p, "0123456789abcdefghijklmnopqrstuvwxyz", 30); /* 6 bytes past the end */
    free(p);
    puts("not reached");
  }
  if (argc > 1 && !strcmp(argv[1], "uaf")) {
    char *kept = NULL;
    FA_FRAME_SCOPE { kept = frame_temp(); strcpy(kept, "frame data"); }
    free(kept);       /* freed correctly, but the pointer is kept */
    fa_frame_end();   /* frame 0 recycled: its memory becomes inaccessible */
    printf("%c\n", kept[0]); /* use after frame */
    puts("not reached");
  }
  if (argc > 1 && !strcmp(argv[1], "poison")) {
    unsigned char *p = malloc(64); memset(p, 1, 64); free(p);
    printf("poisoned byte after free: %#x\n", p[20]);
  }
  if (argc > 1 && !strcmp(argv[1], "clean")) {
    long sum = 0;
    for (int f = 0; f < 50; f++) {
      FA_FRAME_SCOPE {
        for (int i = 0; i < 100; i++) { char *q = frame_temp(); memset(q, i, 40); sum += q[39]; free(q); }
      }
      char *label = make_label(); strcpy(label, "fine"); sum += label[0]; free(label);
      free(malloc(0));      /* zero sizes are not overruns */
      free(calloc(0, 16));
      fa_frame_end();
    }
    printf("clean sum=%ld\n", sum);
  }
  return 0;
}
