/* The autoframe Vulkan tests' game: opens an X window (run it under Xvfb), makes a
 * swapchain on it and presents K times, fetching vkQueuePresentKHR the way
 * engines and overlays do rather than calling the exported symbol. Then prints:
 *   checksum: presents K       (vkQueuePresentKHR calls that succeeded)
 *   frames: F                  (fa_stats_get; -1 without libframealloc)
 *   layer loaded: yes|no
 *
 * af_vk ROUTE K [FAKEGL_PATH]
 *   ROUTE: device    vkGetDeviceProcAddr(device, "vkQueuePresentKHR")
 *          instance  vkGetInstanceProcAddr(instance, "vkQueuePresentKHR")
 *          thread    as device, with the presents on a second thread
 *          gl        as device, inside the fake GL's glXSwapBuffers, which the
 *                    program calls (GL on Vulkan, as Mesa's zink): one frame each
 * Each frame: acquire an image, move it to the present layout (a barrier; nothing
 * is drawn), present, wait for the queue. */
#define _GNU_SOURCE
#define VK_USE_PLATFORM_XCB_KHR
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>
#include <xcb/xcb.h>

#include "framealloc.h"

#include "loaded.h"

#define MAX_IMAGES 8

static struct {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t family;
    VkSurfaceKHR surface;
    VkSwapchainKHR swapchain;
    VkImage images[MAX_IMAGES];
    VkCommandBuffer commands[MAX_IMAGES];
    VkSemaphore acquired, rendered;
    PFN_vkQueuePresentKHR present;
    int count;
    int presented;
} vk;

static void fail(const char *what, VkResult r)
{
    fprintf(stderr, "%s failed: %d\n", what, (int)r);
    exit(3);
}

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        VkResult r_ = (call);                                                                                          \
        if (r_ != VK_SUCCESS)                                                                                          \
            fail(#call, r_);                                                                                           \
    } while (0)

static void create_instance_and_surface(void)
{
    const char *extensions[] = {VK_KHR_SURFACE_EXTENSION_NAME, VK_KHR_XCB_SURFACE_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "af_vk",
                             .apiVersion = VK_API_VERSION_1_0};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                 .enabledExtensionCount = 2, .ppEnabledExtensionNames = extensions};
    CHECK(vkCreateInstance(&info, NULL, &vk.instance));

    xcb_connection_t *x = xcb_connect(NULL, NULL);
    if (xcb_connection_has_error(x)) {
        fprintf(stderr, "cannot connect to the X server (run under xvfb-run)\n");
        exit(3);
    }
    xcb_screen_t *screen = xcb_setup_roots_iterator(xcb_get_setup(x)).data;
    xcb_window_t window = xcb_generate_id(x);
    xcb_create_window(x, XCB_COPY_FROM_PARENT, window, screen->root, 0, 0, 64, 64, 0,
                      XCB_WINDOW_CLASS_INPUT_OUTPUT, screen->root_visual, 0, NULL);
    xcb_map_window(x, window);
    xcb_flush(x);
    VkXcbSurfaceCreateInfoKHR surface = {.sType = VK_STRUCTURE_TYPE_XCB_SURFACE_CREATE_INFO_KHR,
                                         .connection = x, .window = window};
    CHECK(vkCreateXcbSurfaceKHR(vk.instance, &surface, NULL, &vk.surface));
}

static void create_device(void)
{
    uint32_t n = 1;
    VkResult r = vkEnumeratePhysicalDevices(vk.instance, &n, &vk.physical);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0)
        fail("vkEnumeratePhysicalDevices (no Vulkan device: install mesa-vulkan-drivers)", r);
    VkQueueFamilyProperties families[16];
    uint32_t nf = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(vk.physical, &nf, families);
    vk.family = UINT32_MAX;
    for (uint32_t i = 0; i < nf && vk.family == UINT32_MAX; i++) {
        VkBool32 can_present = VK_FALSE;
        vkGetPhysicalDeviceSurfaceSupportKHR(vk.physical, i, vk.surface, &can_present);
        if (can_present && (families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            vk.family = i;
    }
    if (vk.family == UINT32_MAX)
        fail("finding a queue that presents", VK_ERROR_FEATURE_NOT_PRESENT);
    float priority = 1;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueFamilyIndex = vk.family, .queueCount = 1,
                                     .pQueuePriorities = &priority};
    const char *extensions[] = {VK_KHR_SWAPCHAIN_EXTENSION_NAME};
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                               .pQueueCreateInfos = &queue, .enabledExtensionCount = 1,
                               .ppEnabledExtensionNames = extensions};
    CHECK(vkCreateDevice(vk.physical, &info, NULL, &vk.device));
    vkGetDeviceQueue(vk.device, vk.family, 0, &vk.queue);
}

static void create_swapchain(void)
{
    VkSurfaceCapabilitiesKHR caps;
    CHECK(vkGetPhysicalDeviceSurfaceCapabilitiesKHR(vk.physical, vk.surface, &caps));
    VkSurfaceFormatKHR formats[32];
    uint32_t nformats = 32;
    VkResult r = vkGetPhysicalDeviceSurfaceFormatsKHR(vk.physical, vk.surface, &nformats, formats);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || nformats == 0)
        fail("vkGetPhysicalDeviceSurfaceFormatsKHR", r);
    VkExtent2D extent = caps.currentExtent.width == UINT32_MAX ? (VkExtent2D){64, 64} : caps.currentExtent;
    uint32_t images = caps.minImageCount + 1;
    if (caps.maxImageCount && images > caps.maxImageCount)
        images = caps.maxImageCount;
    VkSwapchainCreateInfoKHR info = {
        .sType = VK_STRUCTURE_TYPE_SWAPCHAIN_CREATE_INFO_KHR, .surface = vk.surface, .minImageCount = images,
        .imageFormat = formats[0].format, .imageColorSpace = formats[0].colorSpace, .imageExtent = extent,
        .imageArrayLayers = 1, .imageUsage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT,
        .imageSharingMode = VK_SHARING_MODE_EXCLUSIVE, .preTransform = caps.currentTransform,
        .compositeAlpha = VK_COMPOSITE_ALPHA_OPAQUE_BIT_KHR, .presentMode = VK_PRESENT_MODE_FIFO_KHR,
        .clipped = VK_TRUE};
    CHECK(vkCreateSwapchainKHR(vk.device, &info, NULL, &vk.swapchain));
    uint32_t n = MAX_IMAGES;
    r = vkGetSwapchainImagesKHR(vk.device, vk.swapchain, &n, vk.images);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        fail("vkGetSwapchainImagesKHR", r);

    /* One command buffer per image: a barrier into the present layout. */
    VkCommandPoolCreateInfo pool_info = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                         .queueFamilyIndex = vk.family};
    VkCommandPool pool;
    CHECK(vkCreateCommandPool(vk.device, &pool_info, NULL, &pool));
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                         .commandPool = pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                         .commandBufferCount = n};
    CHECK(vkAllocateCommandBuffers(vk.device, &alloc, vk.commands));
    for (uint32_t i = 0; i < n; i++) {
        VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        CHECK(vkBeginCommandBuffer(vk.commands[i], &begin));
        VkImageMemoryBarrier barrier = {
            .sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER, .oldLayout = VK_IMAGE_LAYOUT_UNDEFINED,
            .newLayout = VK_IMAGE_LAYOUT_PRESENT_SRC_KHR, .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
            .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED, .image = vk.images[i],
            .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
        vkCmdPipelineBarrier(vk.commands[i], VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
                             VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0, NULL, 0, NULL, 1, &barrier);
        CHECK(vkEndCommandBuffer(vk.commands[i]));
    }
    VkSemaphoreCreateInfo semaphore = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
    CHECK(vkCreateSemaphore(vk.device, &semaphore, NULL, &vk.acquired));
    CHECK(vkCreateSemaphore(vk.device, &semaphore, NULL, &vk.rendered));
}

/* One frame: acquire, move to the present layout, present. */
static void present_frame(void)
{
    uint32_t image;
    VkResult r = vkAcquireNextImageKHR(vk.device, vk.swapchain, UINT64_MAX, vk.acquired, VK_NULL_HANDLE, &image);
    if (r != VK_SUCCESS && r != VK_SUBOPTIMAL_KHR)
        fail("vkAcquireNextImageKHR", r);
    VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .waitSemaphoreCount = 1,
                           .pWaitSemaphores = &vk.acquired, .pWaitDstStageMask = &wait_stage,
                           .commandBufferCount = 1, .pCommandBuffers = &vk.commands[image],
                           .signalSemaphoreCount = 1, .pSignalSemaphores = &vk.rendered};
    CHECK(vkQueueSubmit(vk.queue, 1, &submit, VK_NULL_HANDLE));
    VkPresentInfoKHR present = {.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR, .waitSemaphoreCount = 1,
                                .pWaitSemaphores = &vk.rendered, .swapchainCount = 1,
                                .pSwapchains = &vk.swapchain, .pImageIndices = &image};
    r = vk.present(vk.queue, &present);
    if (r != VK_SUCCESS && r != VK_SUBOPTIMAL_KHR)
        fail("vkQueuePresentKHR", r);
    vk.presented++;
    CHECK(vkQueueWaitIdle(vk.queue));
}

static void (*gl_swap)(void *display, unsigned long drawable); /* the gl route: the fake GL's */

static void *present_loop(void *unused)
{
    (void)unused;
    for (int i = 0; i < vk.count; i++) {
        free(malloc(100)); /* something for the allocator between presents */
        if (gl_swap)
            gl_swap(NULL, 0);
        else
            present_frame();
    }
    return NULL;
}

/* The gl route: glXSwapBuffers of the fake GL (through dlsym, a binding the audit
 * module wraps) presents our frame. */
static int set_up_gl(const char *fakegl_path)
{
    void *gl = fakegl_path ? dlopen(fakegl_path, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!gl) {
        fprintf(stderr, "cannot load the fake GL: %s\n", fakegl_path ? dlerror() : "no path given");
        return 0;
    }
    void (*on_swap)(void (*)(void)) = (void (*)(void (*)(void)))dlsym(gl, "fakegl_on_swap");
    gl_swap = (void (*)(void *, unsigned long))dlsym(gl, "glXSwapBuffers");
    if (!on_swap || !gl_swap)
        return 0;
    on_swap(present_frame);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *route = argv[1];
    vk.count = atoi(argv[2]);
    create_instance_and_surface();
    create_device();
    create_swapchain();
    if (strcmp(route, "gl") == 0 && !set_up_gl(argc > 3 ? argv[3] : NULL))
        return 2;
    if (strcmp(route, "device") == 0 || strcmp(route, "thread") == 0 || strcmp(route, "gl") == 0) {
        /* As an overlay or volk: the device's own function, past the loader. */
        PFN_vkGetDeviceProcAddr get_device_proc =
            (PFN_vkGetDeviceProcAddr)vkGetInstanceProcAddr(vk.instance, "vkGetDeviceProcAddr");
        vk.present = (PFN_vkQueuePresentKHR)get_device_proc(vk.device, "vkQueuePresentKHR");
    } else if (strcmp(route, "instance") == 0) {
        vk.present = (PFN_vkQueuePresentKHR)vkGetInstanceProcAddr(vk.instance, "vkQueuePresentKHR");
    } else {
        fprintf(stderr, "unknown route %s\n", route);
        return 2;
    }
    if (!vk.present)
        fail("fetching vkQueuePresentKHR", VK_ERROR_EXTENSION_NOT_PRESENT);
    if (strcmp(route, "thread") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, present_loop, NULL);
        pthread_join(t, NULL);
    } else {
        present_loop(NULL);
    }
    fa_stats stats;
    int have_stats = fa_stats_get(&stats) == 0;
    printf("checksum: presents %d\n", vk.presented);
    printf("frames: %lld\n", have_stats ? (long long)stats.frame : -1LL);
    printf("layer loaded: %s\n", loaded("libframealloc_vklayer") ? "yes" : "no");
    vkDeviceWaitIdle(vk.device);
    vkDestroySwapchainKHR(vk.device, vk.swapchain, NULL);
    vkDestroyDevice(vk.device, NULL);
    vkDestroySurfaceKHR(vk.instance, vk.surface, NULL);
    vkDestroyInstance(vk.instance, NULL);
    return 0;
}
