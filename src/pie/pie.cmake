# Builds the freestanding blobs of src/pie into flat binaries, embeds them in
# ckpt with .incbin and exports their entry offsets as a generated header.
set(PIE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/src/pie)
set(PIE_GEN_DIR ${CMAKE_BINARY_DIR}/pie)
file(MAKE_DIRECTORY ${PIE_GEN_DIR})
set(PIE_CFLAGS -O2 -ffreestanding -fno-builtin -nostdlib -fPIE -fvisibility=hidden
    -fno-stack-protector -fno-exceptions -fno-rtti -fno-asynchronous-unwind-tables
    -fno-unwind-tables -mno-red-zone -mgeneral-regs-only -fcf-protection=none -std=gnu++20 -I${CMAKE_CURRENT_SOURCE_DIR}/src)

function(ckpt_pie_blob name)
  set(objs)
  foreach(src ${ARGN})
    get_filename_component(base ${src} NAME)
    set(obj ${PIE_GEN_DIR}/${name}_${base}.o)
    add_custom_command(OUTPUT ${obj}
      COMMAND ${CMAKE_CXX_COMPILER} ${PIE_CFLAGS} -c ${PIE_DIR}/${src} -o ${obj}
      DEPENDS ${PIE_DIR}/${src} ${PIE_DIR}/abi.h ${PIE_DIR}/parasite_abi.h ${PIE_DIR}/spawn_abi.h ${PIE_DIR}/fd_ops.h ${PIE_DIR}/mem.h ${PIE_DIR}/clone_pid.h ${PIE_DIR}/sys.h ${CMAKE_CURRENT_SOURCE_DIR}/src/arch/x86_64/crc32c.h ${CMAKE_CURRENT_SOURCE_DIR}/src/arch/x86_64/clone3_thread.h
      COMMENT "pie: ${src}")
    list(APPEND objs ${obj})
  endforeach()
  set(elf ${PIE_GEN_DIR}/${name}.elf)
  set(bin ${PIE_GEN_DIR}/${name}.bin)
  set(hdr ${PIE_GEN_DIR}/pie/${name}_blob.h)
  set(asm ${PIE_GEN_DIR}/${name}_blob.S)
  add_custom_command(OUTPUT ${bin} ${hdr} ${asm}
    COMMAND ld -nostdlib -static -pie --no-dynamic-linker -z noexecstack -T ${PIE_DIR}/pie.lds ${objs} -o ${elf}
    COMMAND objcopy -O binary ${elf} ${bin}
    COMMAND ${CMAKE_COMMAND} -DELF=${elf} -DNAME=${name} -DHDR=${hdr} -DASM=${asm} -DBIN=${bin}
            -P ${PIE_DIR}/gen_blob.cmake
    DEPENDS ${objs} ${PIE_DIR}/pie.lds ${PIE_DIR}/gen_blob.cmake
    COMMENT "pie: link ${name}")
  set(PIE_EMBED_SRCS ${PIE_EMBED_SRCS} ${asm} PARENT_SCOPE)
  set(PIE_OUTPUTS ${PIE_OUTPUTS} ${bin} ${hdr} ${asm} PARENT_SCOPE)
endfunction()

ckpt_pie_blob(restorer restorer_entry.S sigreturn.S restorer.cc spawner.cc)
ckpt_pie_blob(parasite parasite_entry.S sigreturn.S parasite.cc)
add_custom_target(pie_blobs DEPENDS ${PIE_OUTPUTS})
