//go:build amd64 && !purego

#include "textflag.h"

// func addMulVVWADX(z, x *uint64, n int, y uint64) (carry uint64)
//
// z[0:n] += x[0:n]·y, returning the carry limb. Blocks of 8 limbs run two
// independent carry chains: ADCX (CF) adds the high half of the previous
// product, ADOX (OF) adds z[i]. At the end of a block both flags are folded
// into the carry limb, which cannot overflow (z + x·y + carry < 2^(64(j+2))
// for j limbs done), so the loop counter may clobber the flags. The last
// n mod 8 limbs take a plain ADD/ADC loop.
TEXT ·addMulVVWADX(SB), NOSPLIT, $0-40
	MOVQ z+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ y+24(FP), DX
	XORQ BX, BX
	CMPQ CX, $8
	JLT  tail

block:
	XORQ  AX, AX // AX = 0, CF = OF = 0
	MULXQ 0(SI), R8, R9
	ADCXQ BX, R8
	ADOXQ 0(DI), R8
	MOVQ  R8, 0(DI)
	MULXQ 8(SI), R10, BX
	ADCXQ R9, R10
	ADOXQ 8(DI), R10
	MOVQ  R10, 8(DI)
	MULXQ 16(SI), R8, R9
	ADCXQ BX, R8
	ADOXQ 16(DI), R8
	MOVQ  R8, 16(DI)
	MULXQ 24(SI), R10, BX
	ADCXQ R9, R10
	ADOXQ 24(DI), R10
	MOVQ  R10, 24(DI)
	MULXQ 32(SI), R8, R9
	ADCXQ BX, R8
	ADOXQ 32(DI), R8
	MOVQ  R8, 32(DI)
	MULXQ 40(SI), R10, BX
	ADCXQ R9, R10
	ADOXQ 40(DI), R10
	MOVQ  R10, 40(DI)
	MULXQ 48(SI), R8, R9
	ADCXQ BX, R8
	ADOXQ 48(DI), R8
	MOVQ  R8, 48(DI)
	MULXQ 56(SI), R10, BX
	ADCXQ R9, R10
	ADOXQ 56(DI), R10
	MOVQ  R10, 56(DI)
	ADCXQ AX, BX
	ADOXQ AX, BX
	ADDQ  $64, SI
	ADDQ  $64, DI
	SUBQ  $8, CX
	CMPQ  CX, $8
	JGE   block

tail:
	TESTQ CX, CX
	JZ    done

tailloop:
	MULXQ 0(SI), R8, R9
	ADDQ  BX, R8
	ADCQ  $0, R9
	ADDQ  0(DI), R8
	ADCQ  $0, R9
	MOVQ  R8, 0(DI)
	MOVQ  R9, BX
	ADDQ  $8, SI
	ADDQ  $8, DI
	DECQ  CX
	JNZ   tailloop

done:
	MOVQ BX, carry+32(FP)
	RET
