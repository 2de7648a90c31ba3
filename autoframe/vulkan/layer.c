/* libframealloc_vklayer.so: the Vulkan layer VK_LAYER_FRAMEALLOC_autoframe, in
 * which every vkQueuePresentKHR ends a frame (with FRAMEALLOC_AUTOFRAME=1).
 *
 * Games and engines rarely call vkQueuePresentKHR by a symbol the audit module
 * could wrap: they fetch it through vkGetDeviceProcAddr (volk, DXVK, VKD3D, SDL),
 * which hands out the driver's function. A layer sits in that chain itself: the
 * loader calls our vkCreateInstance and vkCreateDevice with the next layer's
 * vkGetInstanceProcAddr/vkGetDeviceProcAddr in VkLayer*CreateInfo, we record the
 * next functions we need, and our vkGetDeviceProcAddr hands out our present, which
 * calls the next one and then ends the frame (frame_end.c, the same route as the
 * audit module: fa_api_v1 of libframealloc or the probe).
 *
 * Enabled as an explicit layer (the Debian 12 loader has no environment variable
 * that adds implicit layers):
 *   VK_ADD_LAYER_PATH=<directory of VkLayer_framealloc_autoframe.json>
 *   VK_INSTANCE_LAYERS=VK_LAYER_FRAMEALLOC_autoframe
 * Objects are found by their dispatch key (the loader's dispatch table pointer,
 * the first word of every dispatchable handle): a physical device shares its
 * instance's key, a queue its device's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vk_layer.h>
#include <vulkan/vulkan.h>

#include "frame_end.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct fa_vk_instance {
    void *key;
    VkInstance handle;
    PFN_vkGetInstanceProcAddr next_get_proc;
    PFN_vkDestroyInstance next_destroy;
    struct fa_vk_instance *next;
} fa_vk_instance_t;

typedef struct fa_vk_device {
    void *key;
    PFN_vkGetDeviceProcAddr next_get_proc;
    PFN_vkDestroyDevice next_destroy;
    PFN_vkQueuePresentKHR next_present;
    struct fa_vk_device *next;
} fa_vk_device_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fa_vk_instance_t *instances;
static fa_vk_device_t *devices;
static int presents_end_frames; /* FRAMEALLOC_AUTOFRAME=1; read when the loader negotiates */

static void *key_of(const void *dispatchable) { return *(void *const *)dispatchable; }

static fa_vk_instance_t *instance_find(const void *dispatchable)
{
    void *key = key_of(dispatchable);
    pthread_mutex_lock(&lock);
    fa_vk_instance_t *i = instances;
    while (i && i->key != key)
        i = i->next;
    pthread_mutex_unlock(&lock);
    return i;
}

static fa_vk_device_t *device_find(const void *dispatchable)
{
    void *key = key_of(dispatchable);
    pthread_mutex_lock(&lock);
    fa_vk_device_t *d = devices;
    while (d && d->key != key)
        d = d->next;
    pthread_mutex_unlock(&lock);
    return d;
}

/* The loader's link in a create info's pNext chain: where the next layer is. */
static void *chain_link(const void *create_info, VkStructureType type)
{
    for (VkBaseOutStructure *s = (VkBaseOutStructure *)((const VkBaseInStructure *)create_info)->pNext; s;
         s = s->pNext)
        if (s->sType == type && ((VkLayerInstanceCreateInfo *)s)->function == VK_LAYER_LINK_INFO)
            return s;
    return NULL;
}

/* ---- instance ---- */

static VKAPI_ATTR VkResult VKAPI_CALL layer_CreateInstance(const VkInstanceCreateInfo *info,
                                                           const VkAllocationCallbacks *allocator,
                                                           VkInstance *instance)
{
    VkLayerInstanceCreateInfo *link = chain_link(info, VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO);
    if (!link || !link->u.pLayerInfo)
        return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr next_get_proc = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    link->u.pLayerInfo = link->u.pLayerInfo->pNext; /* the next layer finds its own link */
    PFN_vkCreateInstance next_create = (PFN_vkCreateInstance)next_get_proc(NULL, "vkCreateInstance");
    fa_vk_instance_t *record = calloc(1, sizeof *record);
    if (!next_create || !record) {
        free(record);
        return VK_ERROR_INITIALIZATION_FAILED;
    }
    VkResult result = next_create(info, allocator, instance);
    if (result != VK_SUCCESS) {
        free(record);
        return result;
    }
    record->key = key_of(*instance);
    record->handle = *instance;
    record->next_get_proc = next_get_proc;
    record->next_destroy = (PFN_vkDestroyInstance)next_get_proc(*instance, "vkDestroyInstance");
    pthread_mutex_lock(&lock);
    record->next = instances;
    instances = record;
    pthread_mutex_unlock(&lock);
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL layer_DestroyInstance(VkInstance instance, const VkAllocationCallbacks *allocator)
{
    if (!instance)
        return;
    void *key = key_of(instance);
    pthread_mutex_lock(&lock);
    fa_vk_instance_t **at = &instances;
    while (*at && (*at)->key != key)
        at = &(*at)->next;
    fa_vk_instance_t *record = *at;
    if (record)
        *at = record->next;
    pthread_mutex_unlock(&lock);
    if (record) {
        record->next_destroy(instance, allocator);
        free(record);
    }
}

/* ---- device ---- */

static VKAPI_ATTR VkResult VKAPI_CALL layer_CreateDevice(VkPhysicalDevice physical, const VkDeviceCreateInfo *info,
                                                         const VkAllocationCallbacks *allocator, VkDevice *device)
{
    VkLayerDeviceCreateInfo *link = chain_link(info, VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO);
    fa_vk_instance_t *instance = instance_find(physical);
    if (!link || !link->u.pLayerInfo || !instance)
        return VK_ERROR_INITIALIZATION_FAILED;
    PFN_vkGetInstanceProcAddr next_instance_proc = link->u.pLayerInfo->pfnNextGetInstanceProcAddr;
    PFN_vkGetDeviceProcAddr next_get_proc = link->u.pLayerInfo->pfnNextGetDeviceProcAddr;
    link->u.pLayerInfo = link->u.pLayerInfo->pNext;
    PFN_vkCreateDevice next_create = (PFN_vkCreateDevice)next_instance_proc(instance->handle, "vkCreateDevice");
    fa_vk_device_t *record = calloc(1, sizeof *record);
    if (!next_create || !record) {
        free(record);
        return VK_ERROR_INITIALIZATION_FAILED;
    }
    VkResult result = next_create(physical, info, allocator, device);
    if (result != VK_SUCCESS) {
        free(record);
        return result;
    }
    record->key = key_of(*device);
    record->next_get_proc = next_get_proc;
    record->next_destroy = (PFN_vkDestroyDevice)next_get_proc(*device, "vkDestroyDevice");
    /* NULL when the device has no VK_KHR_swapchain: then we hand out no present. */
    record->next_present = (PFN_vkQueuePresentKHR)next_get_proc(*device, "vkQueuePresentKHR");
    pthread_mutex_lock(&lock);
    record->next = devices;
    devices = record;
    pthread_mutex_unlock(&lock);
    return VK_SUCCESS;
}

static VKAPI_ATTR void VKAPI_CALL layer_DestroyDevice(VkDevice device, const VkAllocationCallbacks *allocator)
{
    if (!device)
        return;
    void *key = key_of(device);
    pthread_mutex_lock(&lock);
    fa_vk_device_t **at = &devices;
    while (*at && (*at)->key != key)
        at = &(*at)->next;
    fa_vk_device_t *record = *at;
    if (record)
        *at = record->next;
    pthread_mutex_unlock(&lock);
    if (record) {
        record->next_destroy(device, allocator);
        free(record);
    }
}

/* Every present call ends a frame, whatever it returns: an out-of-date swapchain
 * still means the game finished a frame's work. */
static VKAPI_ATTR VkResult VKAPI_CALL layer_QueuePresentKHR(VkQueue queue, const VkPresentInfoKHR *info)
{
    fa_vk_device_t *device = device_find(queue);
    if (!device || !device->next_present)
        return VK_ERROR_DEVICE_LOST; /* a queue of a device we did not see created */
    fa_autoframe_enter();
    VkResult result = device->next_present(queue, info);
    fa_autoframe_leave(presents_end_frames);
    return result;
}

/* A present of the audit module's around ours: GL on Vulkan (Mesa's zink) presents
 * a glXSwapBuffers with vkQueuePresentKHR. The audit module calls this with +1 as
 * its present starts and -1 as it returns, so our inner present is nested and ends
 * no frame of its own; the audit module ends that frame. */
EXPORT void fa_vklayer_outer_present(int delta)
{
    if (delta > 0)
        fa_autoframe_enter();
    else
        fa_autoframe_leave(0);
}

/* ---- the functions the loader and the layers above us ask for ---- */

static PFN_vkVoidFunction device_function(const char *name);

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL layer_GetDeviceProcAddr(VkDevice device, const char *name)
{
    fa_vk_device_t *record = device ? device_find(device) : NULL;
    if (!record)
        return NULL;
    PFN_vkVoidFunction ours = device_function(name);
    if (ours && strcmp(name, "vkQueuePresentKHR") == 0 && !record->next_present)
        return NULL; /* no swapchain on this device: nothing to present with */
    return ours ? ours : record->next_get_proc(device, name);
}

static PFN_vkVoidFunction device_function(const char *name)
{
    if (strcmp(name, "vkGetDeviceProcAddr") == 0)
        return (PFN_vkVoidFunction)layer_GetDeviceProcAddr;
    if (strcmp(name, "vkDestroyDevice") == 0)
        return (PFN_vkVoidFunction)layer_DestroyDevice;
    if (strcmp(name, "vkQueuePresentKHR") == 0)
        return (PFN_vkVoidFunction)layer_QueuePresentKHR;
    return NULL;
}

static VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL layer_GetInstanceProcAddr(VkInstance instance, const char *name)
{
    if (strcmp(name, "vkGetInstanceProcAddr") == 0)
        return (PFN_vkVoidFunction)layer_GetInstanceProcAddr;
    if (strcmp(name, "vkCreateInstance") == 0)
        return (PFN_vkVoidFunction)layer_CreateInstance;
    if (strcmp(name, "vkDestroyInstance") == 0)
        return (PFN_vkVoidFunction)layer_DestroyInstance;
    if (strcmp(name, "vkCreateDevice") == 0)
        return (PFN_vkVoidFunction)layer_CreateDevice;
    PFN_vkVoidFunction ours = device_function(name);
    if (ours)
        return ours;
    fa_vk_instance_t *record = instance ? instance_find(instance) : NULL;
    return record ? record->next_get_proc(instance, name) : NULL;
}

/* The loader's first call into the layer (layer interface version 2). */
EXPORT VKAPI_ATTR VkResult VKAPI_CALL vkNegotiateLoaderLayerInterfaceVersion(VkNegotiateLayerInterface *version)
{
    if (!version || version->sType != LAYER_NEGOTIATE_INTERFACE_STRUCT || version->loaderLayerInterfaceVersion < 2)
        return VK_ERROR_INITIALIZATION_FAILED;
    version->loaderLayerInterfaceVersion = 2;
    version->pfnGetInstanceProcAddr = layer_GetInstanceProcAddr;
    version->pfnGetDeviceProcAddr = layer_GetDeviceProcAddr;
    version->pfnGetPhysicalDeviceProcAddr = NULL;
    presents_end_frames = fa_autoframe_mode() == FA_AUTOFRAME_PRESENT;
    return VK_SUCCESS;
}
