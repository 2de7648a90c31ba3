/* Ending frames for autoframe's hooks (the audit module and the Vulkan layer):
 * each links its own copy of frame_end.c. */
#ifndef FA_AUTOFRAME_FRAME_END_H
#define FA_AUTOFRAME_FRAME_END_H

/* FRAMEALLOC_AUTOFRAME: 0 or unset (off), 1 (presents end frames), tick (wake-ups
 * of the main thread's sleeps end frames). Other values: off, as the library reads
 * them (it warns). */
typedef enum { FA_AUTOFRAME_OFF, FA_AUTOFRAME_PRESENT, FA_AUTOFRAME_TICK } fa_autoframe_mode_t;

fa_autoframe_mode_t fa_autoframe_mode(void);

/* A present (or a tick's sleep) starts and returns on this thread. Only the
 * outermost one of a nest ends a frame: SDL_GL_SwapWindow calls glXSwapBuffers,
 * SDL_Delay calls nanosleep. fa_autoframe_leave(1) ends the frame (fa_frame_end()
 * then fa_frame_begin()) if the call is the outermost; leave(0) ends none. */
void fa_autoframe_enter(void);
void fa_autoframe_leave(int ends_frame);

/* One line on stderr, allocation-free. */
void fa_autoframe_say(const char *msg);

#endif
