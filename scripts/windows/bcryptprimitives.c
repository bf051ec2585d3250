/* Wine 8 (Debian bookworm) has no bcryptprimitives.dll, from which the Rust standard
   library (since 1.78) imports ProcessPrng for random numbers: without it every test
   executable fails to start under Wine (exit 53). This stand-in forwards to the older
   RtlGenRandom (SystemFunction036, in advapi32). Built and used only for the tests under
   Wine by scripts/windows-check; never shipped. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
